"""OpenRaster (.ora) read/write with zipfile + PIL.

Layout written: ``mimetype`` (first entry, stored, ``image/openraster``), ``stack.xml``,
``data/layer<N>.png`` per layer, ``mergedimage.png`` (the flattened image) and
``Thumbnails/thumbnail.png`` (at most 256 px). stack.xml lists layers top first with
name, x, y, opacity and visibility; opacity is written with Python's round-trip float repr,
so a save/load cycle is bit-exact. Nested stacks are read (offsets add up) but written flat.
"""

from __future__ import annotations

import io
import logging
import os
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from .files import DocumentError, atomic_write, png_bytes, read_rgba
from .model import Document, Layer, flatten

log = logging.getLogger(__name__)

MIMETYPE = b"image/openraster"
THUMBNAIL_SIZE = 256


# ----------------------------------------------------------------------------- write
def write_ora(doc: Document, path: str | os.PathLike) -> None:
    """Save ``doc`` as OpenRaster at ``path`` (atomically: temp file + os.replace)."""
    path = Path(path)
    entries = _entries(doc)
    try:
        atomic_write(path, lambda f: _write_zip(f, entries))
    except OSError as exc:
        raise DocumentError(f"could not write {path}: {exc.strerror or exc}") from None


def _entries(doc: Document) -> list[tuple[str, bytes]]:
    root = ET.Element("image", w=str(doc.width), h=str(doc.height), version="0.0.3")
    stack = ET.SubElement(root, "stack")
    files: list[tuple[str, bytes]] = []
    for i, layer in enumerate(reversed(doc.layers)):  # stack.xml lists the top layer first
        src = f"data/layer{i}.png"
        attrs = {
            "name": layer.name,
            "src": src,
            "x": str(int(layer.x)),
            "y": str(int(layer.y)),
            "opacity": repr(float(layer.opacity)),
            "visibility": "visible" if layer.visible else "hidden",
        }
        if layer.uid == doc.active_uid:
            attrs["selected"] = "true"
        ET.SubElement(stack, "layer", attrs)
        files.append((src, png_bytes(layer.pixels)))
    xml = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    merged = flatten(doc)
    return [("stack.xml", xml), *files, ("mergedimage.png", png_bytes(merged))] + [
        ("Thumbnails/thumbnail.png", _thumbnail(merged))
    ]


def _thumbnail(rgba: np.ndarray) -> bytes:
    im = Image.fromarray(rgba, "RGBA")
    im.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _write_zip(f, entries: list[tuple[str, bytes]]) -> None:
    with zipfile.ZipFile(f, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), MIMETYPE, compress_type=zipfile.ZIP_STORED)
        for name, data in entries:
            # PNGs are already compressed; deflating them again only costs time
            kind = zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED
            z.writestr(zipfile.ZipInfo(name), data, compress_type=kind)


# ----------------------------------------------------------------------------- read
def read_ora(path: str | os.PathLike) -> Document:
    """Open an OpenRaster file -> Document (layers bottom to top). DocumentError if broken."""
    path = Path(path)
    if not path.is_file():
        raise DocumentError(f"{path} does not exist")
    try:
        with zipfile.ZipFile(path) as z:
            root = ET.fromstring(z.read("stack.xml"))
            w, h = int(root.get("w", "0")), int(root.get("h", "0"))
            stack = root.find("stack")
            if stack is None or w <= 0 or h <= 0:
                raise DocumentError(f"{path.name}: stack.xml has no <stack> or no image size")
            layers: list[Layer] = []
            selected: list[Layer] = []
            _read_stack(z, stack, 0, 0, (layers, selected), path.name)
    except (zipfile.BadZipFile, KeyError, ET.ParseError, ValueError) as exc:
        raise DocumentError(f"{path.name} is not a valid OpenRaster file: {exc}") from None
    layers.reverse()  # stack.xml is top first; documents are bottom first
    active = selected[0].uid if selected else None
    return Document(w, h, layers, path=path, source_path=path, active_uid=active)


def _read_stack(z, stack, dx: int, dy: int, out: tuple[list, list], what: str) -> None:
    for node in stack:
        x = dx + int(float(node.get("x", "0")))
        y = dy + int(float(node.get("y", "0")))
        if node.tag == "stack":
            _read_stack(z, node, x, y, out, what)
        elif node.tag == "layer":
            layer = _read_layer(z, node, x, y, what)
            out[0].append(layer)
            if node.get("selected") == "true":
                out[1].append(layer)


def _read_layer(z, node, x: int, y: int, what: str) -> Layer:
    src = node.get("src")
    if not src:
        raise DocumentError(f"{what}: a layer in stack.xml has no src")
    op = node.get("composite-op", "svg:src-over")
    if op != "svg:src-over":
        log.warning("%s: layer %r uses %s; shown as normal (src-over)", what, node.get("name"), op)
    opacity = float(node.get("opacity", "1"))
    return Layer(
        name=node.get("name") or Path(src).stem,
        pixels=read_rgba(io.BytesIO(z.read(src)), f"{what}:{src}"),
        x=x,
        y=y,
        opacity=min(1.0, max(0.0, opacity)),
        visible=node.get("visibility", "visible") != "hidden",
    )
