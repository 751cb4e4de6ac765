"""Opening and writing image files: raster formats (one layer) and atomic writes."""

from __future__ import annotations

import io
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from .model import Document, Layer, flatten

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")
ORA_SUFFIX = ".ora"
OPEN_SUFFIXES = RASTER_SUFFIXES + (ORA_SUFFIX,)


class DocumentError(Exception):
    """A file could not be opened or written; the message is shown to the user as-is."""


def _umask() -> int:
    """The process umask: from /proc on Linux (no side effect, safe from any thread), else
    by setting it and putting it back at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_file_mode(path: Path) -> int:
    """An existing file keeps its permissions; a new one gets 0666 minus the umask (the
    mode ``open()`` would give it; mkstemp's temp files are 0600)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` via a temp file in the same folder + os.replace (never a partial file)."""
    path = Path(path)
    mode = _new_file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
