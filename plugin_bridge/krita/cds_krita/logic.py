"""The Krita plug-in's logic, free of Krita and Qt so it can be tested with a fake document.

Everything here talks to the *subset* of Krita's Python API listed in :class:`KritaDocument`,
:class:`KritaNode` and :class:`KritaSelection` (the real objects satisfy it; the tests pass a
fake). Facts about Krita this module relies on, all checked under ``kritarunner`` by
``tests/plugins/test_krita_real.py``:

* ``Node.pixelData(x, y, w, h)`` / ``setPixelData`` use *image* coordinates, whatever the
  layer's offset (``Node.move``); pixels outside the layer's data read as transparent.
* An 8-bit RGBA layer stores pixels as **B, G, R, A** bytes; 16-bit integer layers B, G, R, A
  too, float layers R, G, B, A (see :mod:`.depth`).
* ``Document.selection()`` is ``None`` without a selection; ``Selection.x()/y()/width()/
  height()`` is its exact bounding box and ``pixelData`` gives one byte (0..255) per pixel.

What gets sent: the active paint layer's pixels inside the selection's bounding box grown by
a margin (clipped to the canvas and to the layer's content), or the layer's content on the
canvas when nothing is selected; the selection inside that box is the mask.

RGBA layers of 8 or 16-bit integers or 16 or 32-bit floats are accepted; the model gets 8-bit
sRGB (converted with the layer profile's curve, :mod:`.cds_bridge.pixelformat`).

What comes back is inserted as a **new paint layer directly above the source layer**, in the
source's colour space, named after the target prompt, covering exactly the box that was
sent: inside the selection it shows the edit (blended by the selection at the layer's
depth), elsewhere in the box it is a bit-identical copy of the source pixels, outside the
box it is transparent. Stacked above the source it shows the edited picture; hide or delete
it to undo. The source layer is only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from . import depth as depths
from .cds_bridge import pixelformat
from .cds_bridge.plugin_common import (  # noqa: F401 - re-exported for the session and tests
    EditParams,
    PluginError,
    Rect,
    check_params,
    context_margin,
    layer_name,
)

#: Krita's names for the colour spaces the plug-in accepts.
COLOR_MODEL = depths.COLOR_MODEL
COLOR_DEPTHS = tuple(depths.DEPTHS)


# ----------------------------------------------------------------------------- Krita API subset
class KritaRect(Protocol):
    def x(self) -> int: ...
    def y(self) -> int: ...
    def width(self) -> int: ...
    def height(self) -> int: ...


class KritaSelection(Protocol):
    def x(self) -> int: ...
    def y(self) -> int: ...
    def width(self) -> int: ...
    def height(self) -> int: ...
    def pixelData(self, x: int, y: int, w: int, h: int) -> Any: ...


class KritaNode(Protocol):
    def name(self) -> str: ...
    def type(self) -> str: ...
    def colorModel(self) -> str: ...
    def colorDepth(self) -> str: ...
    def colorProfile(self) -> str: ...
    def setColorSpace(self, model: str, depth: str, profile: str) -> bool: ...
    def bounds(self) -> KritaRect: ...
    def pixelData(self, x: int, y: int, w: int, h: int) -> Any: ...
    def setPixelData(self, data: Any, x: int, y: int, w: int, h: int) -> Any: ...
    def parentNode(self) -> KritaNode | None: ...
    def addChildNode(self, child: KritaNode, above: KritaNode | None) -> bool: ...


class KritaDocument(Protocol):
    def width(self) -> int: ...
    def height(self) -> int: ...
    def activeNode(self) -> KritaNode | None: ...
    def selection(self) -> KritaSelection | None: ...
    def createNode(self, name: str, node_type: str) -> KritaNode: ...
    def refreshProjection(self) -> None: ...


# ----------------------------------------------------------------------------- checks
def check_layer(node: KritaNode | None) -> KritaNode:
    """The node to edit, or PluginError saying why it cannot be edited."""
    if node is None:
        raise PluginError("no active layer: select a paint layer in the Layers docker")
    if node.type() != "paintlayer":
        raise PluginError(
            f"the active layer '{node.name()}' is a {node.type() or 'special layer'}: "
            "select a paint layer (or convert this one to a paint layer)"
        )
    model, depth = str(node.colorModel()), str(node.colorDepth())
    if not depths.supported(model, depth):
        raise PluginError(
            f"the layer '{node.name()}' is {model}/{depth}: CDS needs RGB/Alpha at 8 or "
            "16-bit integer or 16 or 32-bit float (Image > Convert Image Color Space)"
        )
    return node


# ----------------------------------------------------------------------------- request
@dataclass(frozen=True)
class Crop:
    """What is sent: a box of the layer (image coordinates), its RGBA pixels and the mask."""

    box: Rect
    rgba: bytes  # 8-bit sRGB RGBA, what the model gets
    mask: bytes | None  # one byte per pixel of ``box``; None = edit the whole box
    layer_name: str
    #: The layer's own pixels in the box (pixelData, at the layer's depth) and their format.
    raw: bytes
    fmt: pixelformat.PixelFormat


def plan_box(doc: KritaDocument, node: KritaNode) -> tuple[Rect, KritaSelection | None]:
    """The box to send and the selection (None when nothing is selected)."""
    canvas = Rect(0, 0, int(doc.width()), int(doc.height()))
    content = Rect.of(node.bounds()).intersect(canvas)
    if content.empty:
        raise PluginError(f"the layer '{node.name()}' is empty on the canvas: nothing to edit")
    selection = doc.selection()
    sel_box = Rect.of(selection) if selection is not None else Rect(0, 0, 0, 0)
    if sel_box.empty:
        return content, None
    box = sel_box.grow(context_margin(sel_box)).intersect(content)
    if box.empty or sel_box.intersect(content).empty:
        raise PluginError(
            f"the selection does not overlap the layer '{node.name()}': select an area "
            "where the layer has pixels (or Select > Deselect to edit the whole layer)"
        )
    return box, selection


def read_crop(doc: KritaDocument, node: KritaNode) -> Crop:
    """Read the source pixels (RGBA) and the mask; the layer itself is only read."""
    check_layer(node)
    box, selection = plan_box(doc, node)
    fmt = depths.pixel_format(node)
    raw = bytes(node.pixelData(box.left, box.top, box.width, box.height))
    if len(raw) != box.width * box.height * fmt.pixel_bytes:
        raise PluginError(
            f"Krita returned {len(raw)} bytes for a {box.width}x{box.height} area of "
            f"{node.colorModel()}/{node.colorDepth()} pixels, "
            f"expected {fmt.pixel_bytes} bytes a pixel"
        )
    mask = None
    if selection is not None:
        mask = bytes(selection.pixelData(box.left, box.top, box.width, box.height))
        if not any(mask):
            raise PluginError("the selection is empty inside the layer: select what to edit")
    return Crop(box, pixelformat.to_rgba8(raw, fmt), mask, str(node.name()), raw, fmt)


# ----------------------------------------------------------------------------- result
def result_pixels(crop: Crop, rgba: bytes) -> bytes:
    """The 8-bit RGBA result at the source layer's format: the source's own bytes where the
    mask is 0 (and its alpha everywhere), blended by the mask inside (see pixelformat)."""
    box = crop.box
    if len(rgba) != box.width * box.height * 4:
        raise PluginError(
            f"the result has {len(rgba)} bytes, expected {box.width}x{box.height} RGBA pixels"
        )
    try:
        return pixelformat.composite(crop.raw, rgba, crop.mask, crop.fmt, crop.rgba)
    except pixelformat.PixelFormatError as exc:
        raise PluginError(str(exc)) from None


def insert_result(
    doc: KritaDocument, source: KritaNode, crop: Crop, rgba: bytes, name: str
) -> KritaNode:
    """Add a new paint layer right above ``source``, in its colour space, holding the
    result ``rgba`` (8-bit RGBA of ``crop.box``) composited over the crop's source pixels."""
    box = crop.box
    pixels = result_pixels(crop, rgba)
    parent = source.parentNode()
    if parent is None:
        raise PluginError(f"the layer '{source.name()}' has no parent: cannot insert above it")
    layer = doc.createNode(name, "paintlayer")
    if layer is None or not parent.addChildNode(layer, source):
        raise PluginError(f"Krita refused to add the layer '{name}' above '{source.name()}'")
    wanted = depths.color_space(source)
    if depths.color_space(layer) != wanted:
        layer.setColorSpace(*wanted)  # a layer converted away from the document's space
        if depths.color_space(layer) != wanted:
            raise PluginError(
                f"Krita made the new layer {'/'.join(depths.color_space(layer))}, "
                f"not {'/'.join(wanted)} like '{source.name()}'"
            )
    layer.setPixelData(pixels, box.left, box.top, box.width, box.height)
    doc.refreshProjection()
    return layer
