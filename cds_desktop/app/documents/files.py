"""Opening and writing image files: raster formats (one layer) and atomic writes."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from cds_desktop.fileio import atomic_write

from .model import Document, Layer, flatten

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")
ORA_SUFFIX = ".ora"
OPEN_SUFFIXES = RASTER_SUFFIXES + (ORA_SUFFIX,)


class DocumentError(Exception):
    """A file could not be opened or written; the message is shown to the user as-is."""


def png_bytes(rgba: np.ndarray, level: int = 6) -> bytes:
    """PNG of (H, W, 4) uint8 RGBA at zlib ``level`` (6 = PIL's default)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(
        buf, format="PNG", compress_level=level
    )
    return buf.getvalue()


def read_rgba(data: BinaryIO | Path, what: str) -> np.ndarray:
    """Decode an image to (H, W, 4) uint8 RGBA; DocumentError if unreadable."""
    try:
        with Image.open(data) as im:
            im.load()
            return np.array(im.convert("RGBA"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DocumentError(f"could not read {what}: {exc}") from None


def open_raster(path: Path) -> Document:
    """PNG/JPEG/WebP/TIFF -> a one-layer document named after the file."""
    path = Path(path)
    if not path.is_file():
        raise DocumentError(f"{path} does not exist")
    pixels = read_rgba(path, path.name)
    h, w = pixels.shape[:2]
    return Document(w, h, [Layer(path.stem or "background", pixels)], source_path=path)


def open_document(path: str | os.PathLike) -> Document:
    """Open any supported file by its suffix (.ora or a raster format)."""
    from .ora import read_ora  # local: ora imports this module

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ORA_SUFFIX:
        return read_ora(path)
    if suffix not in RASTER_SUFFIXES:
        raise DocumentError(
            f"{path.name}: unsupported file type {suffix or '(none)'}; "
            f"expected one of {', '.join(OPEN_SUFFIXES)}"
        )
    return open_raster(path)


def export_png(doc: Document, path: str | os.PathLike) -> None:
    """Write the flattened visible layers as a PNG (atomically)."""
    data = png_bytes(flatten(doc))
    try:
        atomic_write(Path(path), lambda f: f.write(data))
    except OSError as exc:
        raise DocumentError(f"could not write {path}: {exc.strerror or exc}") from None
