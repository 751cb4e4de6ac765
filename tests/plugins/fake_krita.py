"""A small fake of the part of Krita's Python API the plug-in uses, with Krita's semantics:
image coordinates for pixelData/setPixelData whatever the layer offset, host-order channels
B,G,R,A for 8/16-bit integer RGBA and R,G,B,A for 16/32-bit float RGBA, transparent (all
zero) pixels outside a layer's data, childNodes() bottom to top, new nodes in the document's
colour space (default profiles as Krita's: sRGB-trc for 8-bit, linear g10 otherwise), and a
Selection whose x/y/width/height is its exact bounding box and whose pixelData is one byte a
pixel at every depth.

Runs on Python 3.8+ (the host-Python test imports it under pyenv's interpreters), with
``make_krita_module`` standing in for the ``krita`` module itself.
"""

from __future__ import annotations

import struct
import types

TRANSPARENT = b"\x00\x00\x00\x00"
#: Krita's colorDepth() -> bytes per channel.
CHANNEL_BYTES = {"U8": 1, "U16": 2, "F16": 2, "F32": 4}
SRGB_PROFILE, LINEAR_PROFILE = "sRGB-elle-V2-srgbtrc.icc", "sRGB-elle-V2-g10.icc"


def default_profile(depth: str) -> str:
    return SRGB_PROFILE if depth == "U8" else LINEAR_PROFILE


def pack_pixel(depth: str, r, g, b, a) -> bytes:
    """One pixel in Krita's pixelData layout for an RGBA layer of ``depth``."""
    if depth == "U8":
        return bytes((b, g, r, a))
    if depth == "U16":
        return struct.pack("=4H", b, g, r, a)
    return struct.pack("=4e" if depth == "F16" else "=4f", r, g, b, a)


class FakeRect:
    def __init__(self, x: int, y: int, w: int, h: int) -> None:
        self._v = (x, y, w, h)

    def x(self) -> int:
        return self._v[0]

    def y(self) -> int:
        return self._v[1]

    def width(self) -> int:
        return self._v[2]

    def height(self) -> int:
        return self._v[3]


class FakeNode:
    def __init__(
        self, name: str, node_type: str = "paintlayer", model="RGBA", depth="U8", profile=None
    ):
        self._name, self._type, self._model, self._depth = name, node_type, model, depth
        self._profile = profile or default_profile(depth)
        self.pixels: dict[tuple[int, int], bytes] = {}  # image coords -> pixelData bytes
        self.parent: FakeNode | None = None
        self.children: list[FakeNode] = []  # bottom to top, like Krita
        self.writes = 0

    # --- Krita API
    def name(self) -> str:
        return self._name

    def type(self) -> str:
        return self._type

    def colorModel(self) -> str:
        return self._model

    def colorDepth(self) -> str:
        return self._depth

    def colorProfile(self) -> str:
        return self._profile

    def setColorSpace(self, model: str, depth: str, profile: str) -> bool:
        assert not self.pixels, "the fake converts only empty layers"
        self._model, self._depth, self._profile = model, depth, profile
        return True

    @property
    def pixel_bytes(self) -> int:
        return 4 * CHANNEL_BYTES.get(self._depth, 1)

    def bounds(self) -> FakeRect:
        clear = bytes(self.pixel_bytes)
        keys = [k for k, v in self.pixels.items() if v != clear]
        if not keys:
            return FakeRect(0, 0, 0, 0)
        xs, ys = [k[0] for k in keys], [k[1] for k in keys]
        return FakeRect(min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        get, clear = self.pixels.get, bytes(self.pixel_bytes)
        return b"".join(get((i, j), clear) for j in range(y, y + h) for i in range(x, x + w))

    def setPixelData(self, data: bytes, x: int, y: int, w: int, h: int) -> bool:
        n = self.pixel_bytes
        assert len(data) == w * h * n, "setPixelData size mismatch"
        self.writes += 1
        for j in range(h):
            for i in range(w):
                k = (j * w + i) * n
                self.pixels[(x + i, y + j)] = bytes(data[k : k + n])
        return True

    def move(self, dx: int, dy: int) -> None:
        self.pixels = {(x + dx, y + dy): v for (x, y), v in self.pixels.items()}

    def parentNode(self) -> FakeNode | None:
        return self.parent

    def childNodes(self) -> list[FakeNode]:
        return list(self.children)

    def addChildNode(self, child: FakeNode, above: FakeNode | None) -> bool:
        index = 0 if above is None else self.children.index(above) + 1
        self.children.insert(index, child)
        child.parent = self
        return True

    # --- test helpers
    def fill(self, width: int, height: int, rgba_at) -> None:
        """Set every pixel of width x height from rgba_at(x, y) -> (r, g, b, a), numbers of
        the layer's depth (0..255, 0..65535 or floats)."""
        for y in range(height):
            for x in range(width):
                self.pixels[(x, y)] = pack_pixel(self._depth, *rgba_at(x, y))


class FakeSelection:
    def __init__(self, values: dict[tuple[int, int], int]) -> None:
        self.values = {k: v for k, v in values.items() if v}

    @classmethod
    def rectangle(cls, x: int, y: int, w: int, h: int, value: int = 255) -> FakeSelection:
        return cls({(i, j): value for j in range(y, y + h) for i in range(x, x + w)})

    def _box(self) -> tuple[int, int, int, int]:
        if not self.values:
            return 0, 0, 0, 0
        xs, ys = [k[0] for k in self.values], [k[1] for k in self.values]
        return min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1

    def x(self) -> int:
        return self._box()[0]

    def y(self) -> int:
        return self._box()[1]

    def width(self) -> int:
        return self._box()[2]

    def height(self) -> int:
        return self._box()[3]

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        return bytes(self.values.get((i, j), 0) for j in range(y, y + h) for i in range(x, x + w))


class FakeDocument:
    def __init__(self, width: int, height: int, depth: str = "U8", profile=None) -> None:
        self._size = (width, height)
        self.depth, self.profile = depth, profile or default_profile(depth)
        self.root = FakeNode("root", "grouplayer", depth=depth, profile=self.profile)
        self.active: FakeNode | None = None
        self.sel: FakeSelection | None = None
        self.refreshes = 0

    def width(self) -> int:
        return self._size[0]

    def height(self) -> int:
        return self._size[1]

    def rootNode(self) -> FakeNode:
        return self.root

    def activeNode(self) -> FakeNode | None:
        return self.active

    def selection(self) -> FakeSelection | None:
        return self.sel

    def createNode(self, name: str, node_type: str) -> FakeNode:
        return FakeNode(name, node_type, depth=self.depth, profile=self.profile)

    def refreshProjection(self) -> None:
        self.refreshes += 1


def gradient(x: int, y: int) -> tuple[int, int, int, int]:
    """A pattern where R, G and B differ everywhere, so a channel swap cannot go unnoticed."""
    return (4 * x) % 256, (5 * y) % 256, (200 - 2 * x - y) % 256, 255


def deep_gradient(depth: str):
    """``gradient`` at ``depth`` with detail 8 bits cannot hold: 16-bit values off the
    multiples of 257, and for floats fractions, negatives and HDR values (up to 4.0)."""
    if depth == "U8":
        return gradient
    if depth == "U16":

        def u16(x: int, y: int) -> tuple[int, int, int, int]:
            r, g, b, _ = gradient(x, y)
            return r * 257 ^ (x % 7), g * 257 ^ (y % 5), b * 257 ^ 3, 65535 - (x + y) % 3

        return u16

    def flt(x: int, y: int) -> tuple[float, float, float, float]:
        r, g, b, _ = gradient(x, y)
        hdr = 4.0 if (x + y) % 11 == 0 else r / 255.0 + 1e-4
        return hdr, g / 255.0 + 3e-4, b / 255.0 - 0.01, 1.0 - (x % 3) / 7.0

    return flt


def document_with_layer(
    width: int = 64, height: int = 48, depth: str = "U8", profile=None
) -> tuple[FakeDocument, FakeNode]:
    doc = FakeDocument(width, height, depth, profile)
    layer = FakeNode("Source", depth=depth, profile=doc.profile)
    layer.fill(width, height, deep_gradient(depth))
    doc.root.addChildNode(layer, None)
    doc.active = layer
    return doc, layer


# ----------------------------------------------------------------------------- krita module
def make_krita_module(document=None) -> types.ModuleType:
    """A stand-in ``krita`` module: ``Krita.instance()`` records the docker factories and
    extensions the plug-in registers and returns ``document`` as the active one. Needs the
    Qt stand-in (or real PyQt) importable as ``PyQt5``: DockWidget is a QDockWidget."""
    from PyQt5 import QtWidgets

    class Krita:
        _instance = None

        def __init__(self) -> None:
            self.docker_factories, self.extensions = [], []
            self.document = document

        @classmethod
        def instance(cls) -> Krita:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

        def addDockWidgetFactory(self, factory) -> None:
            self.docker_factories.append(factory)

        def addExtension(self, extension) -> None:
            self.extensions.append(extension)

        def activeDocument(self):
            return self.document

        def activeWindow(self):
            return None

    class DockWidget(QtWidgets.QDockWidget):
        pass

    class DockWidgetFactoryBase:
        DockRight = "right"

    class DockWidgetFactory:
        def __init__(self, docker_id: str, area, cls) -> None:
            self.id, self.area, self.cls = docker_id, area, cls

    class Extension:
        def __init__(self, parent=None) -> None:
            self.parent = parent

    module = types.ModuleType("krita")
    for item in (Krita, DockWidget, DockWidgetFactoryBase, DockWidgetFactory, Extension):
        setattr(module, item.__name__, item)
    return module
