"""A small fake of the part of Krita's Python API the plug-in uses, with Krita's semantics:
image coordinates for pixelData/setPixelData whatever the layer offset, B,G,R,A byte order
for 8-bit RGBA, transparent pixels outside a layer's data, childNodes() bottom to top, and
a Selection whose x/y/width/height is its exact bounding box."""

from __future__ import annotations

TRANSPARENT = b"\x00\x00\x00\x00"


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
    def __init__(self, name: str, node_type: str = "paintlayer", model="RGBA", depth="U8"):
        self._name, self._type, self._model, self._depth = name, node_type, model, depth
        self.pixels: dict[tuple[int, int], bytes] = {}  # image coords -> BGRA
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

    def bounds(self) -> FakeRect:
        keys = [k for k, v in self.pixels.items() if v != TRANSPARENT]
        if not keys:
            return FakeRect(0, 0, 0, 0)
        xs, ys = [k[0] for k in keys], [k[1] for k in keys]
        return FakeRect(min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        get = self.pixels.get
        return b"".join(get((i, j), TRANSPARENT) for j in range(y, y + h) for i in range(x, x + w))

    def setPixelData(self, data: bytes, x: int, y: int, w: int, h: int) -> bool:
        assert len(data) == w * h * 4, "setPixelData size mismatch"
        self.writes += 1
        for j in range(h):
            for i in range(w):
                k = (j * w + i) * 4
                self.pixels[(x + i, y + j)] = bytes(data[k : k + 4])
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
        """Set every pixel of width x height from rgba_at(x, y) -> (r, g, b, a)."""
        for y in range(height):
            for x in range(width):
                r, g, b, a = rgba_at(x, y)
                self.pixels[(x, y)] = bytes((b, g, r, a))


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
    def __init__(self, width: int, height: int) -> None:
        self._size = (width, height)
        self.root = FakeNode("root", "grouplayer")
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
        return FakeNode(name, node_type)

    def refreshProjection(self) -> None:
        self.refreshes += 1


def gradient(x: int, y: int) -> tuple[int, int, int, int]:
    """A pattern where R, G and B differ everywhere, so a channel swap cannot go unnoticed."""
    return (4 * x) % 256, (5 * y) % 256, (200 - 2 * x - y) % 256, 255


def document_with_layer(width: int = 64, height: int = 48) -> tuple[FakeDocument, FakeNode]:
    doc = FakeDocument(width, height)
    layer = FakeNode("Source")
    layer.fill(width, height, gradient)
    doc.root.addChildNode(layer, None)
    doc.active = layer
    return doc, layer
