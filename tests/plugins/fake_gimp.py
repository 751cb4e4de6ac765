"""A fake of exactly the GIMP 3.0 / GEGL calls cds_gimp.py makes, as ``gi.repository``
modules. Semantics follow GIMP 3.0: drawable buffers are in drawable-local coordinates, the
selection channel's buffer in image coordinates; ``get_offsets()`` and
``Gimp.Selection.bounds()`` return GI out-tuples with leading booleans; the layer stack is
listed top first and ``insert_layer(layer, parent, position)`` puts the layer at
``position`` (0 = top); layers have the image's precision (8-bit, 16-bit sRGB-encoded or
32-bit float linear here) and buffers convert between babl formats through linear light,
clipping to 0..1 for integer formats, as babl does. Everything the plug-in does is recorded
for the tests."""

from __future__ import annotations

import struct
import types
from enum import Enum

RGBA_FORMAT, MASK_FORMAT = "R'G'B'A u8", "Y u8"
#: Component types: struct code, largest value (None: float).
TYPES = {"u8": ("B", 255), "u16": ("H", 65535), "float": ("f", None)}


def _srgb_to_linear(v: float) -> float:
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def _linear_to_srgb(v: float) -> float:
    if v <= 0.0031308:
        return v * 12.92
    return 1.055 * v ** (1 / 2.4) - 0.055


class Format:
    """A babl pixel format: "R'G'B'A u16" (sRGB-encoded), "RGBA float" (linear), "Y u8"."""

    def __init__(self, name: str) -> None:
        self.name = name
        model, self.type = name.split(" ")
        self.linear = "'" not in model
        self.components = len(model.replace("'", ""))
        self.has_alpha = model.endswith("A")
        code, self.maximum = TYPES[self.type]
        self.struct = struct.Struct(f"={self.components}{code}")
        self.bpp = self.struct.size

    def decode(self, raw: bytes) -> tuple[float, ...]:
        """One pixel as linear-light floats (alpha last; 1.0 when there is none)."""
        values = [float(v) for v in self.struct.unpack(raw)]
        if self.maximum is not None:
            values = [v / self.maximum for v in values]
        colour = values[:3] if self.components >= 3 else values[:1] * 3
        if not self.linear:
            colour = [_srgb_to_linear(v) for v in colour]
        return (*colour, values[3] if self.has_alpha else 1.0)

    def encode(self, pixel: tuple[float, ...]) -> bytes:
        colour, alpha = list(pixel[:3]), pixel[3]
        if not self.linear:
            colour = [_linear_to_srgb(v) for v in colour]
        values = (colour if self.components >= 3 else colour[:1]) + [alpha] * self.has_alpha
        if self.maximum is not None:
            values = [min(self.maximum, max(0, round(v * self.maximum))) for v in values]
        return self.struct.pack(*values)


_FORMATS: dict[str, Format] = {}


def babl_format(name: str) -> Format:
    if name not in _FORMATS:
        _FORMATS[name] = Format(name)
    return _FORMATS[name]


class Rectangle:
    def __init__(self, x: int, y: int, width: int, height: int) -> None:
        self.x, self.y, self.width, self.height = x, y, width, height

    @classmethod
    def new(cls, x, y, width, height) -> Rectangle:
        return cls(int(x), int(y), int(width), int(height))


class AbyssPolicy(Enum):
    NONE = 0
    CLAMP = 1


class Buffer:
    """Pixels of one item in its own format, local coordinates. get/set convert like babl
    (through linear-light floats; u8 conversions clip float values to 0..1); ``None`` as the
    format of get means the buffer's own format, as in GEGL."""

    def __init__(self, owner, width: int, height: int, fmt: str) -> None:
        self.owner, self.width, self.height = owner, width, height
        self.format = babl_format(fmt)
        self.data = bytearray(width * height * self.format.bpp)
        self.flushed = 0
        self.conversions: list[tuple[str, str]] = []

    @property
    def channels(self) -> int:
        return self.format.bpp

    def _convert(self, raw: bytes, src: Format, dst: Format) -> bytes:
        if src is dst:
            return bytes(raw)
        self.conversions.append((src.name, dst.name))
        n = src.bpp
        return b"".join(dst.encode(src.decode(raw[k : k + n])) for k in range(0, len(raw), n))

    def get(self, rect: Rectangle, scale: float, fmt: str | None, abyss: AbyssPolicy) -> bytes:
        assert scale == 1.0, scale
        out = bytearray()
        n = self.format.bpp
        for y in range(rect.y, rect.y + rect.height):
            for x in range(rect.x, rect.x + rect.width):
                if abyss is AbyssPolicy.CLAMP:
                    x, y = min(max(x, 0), self.width - 1), min(max(y, 0), self.height - 1)
                elif not (0 <= x < self.width and 0 <= y < self.height):
                    out += bytes(n)
                    continue
                k = (y * self.width + x) * n
                out += self.data[k : k + n]
        target = self.format if fmt is None else babl_format(fmt)
        return self._convert(bytes(out), self.format, target)

    def set(self, rect: Rectangle, fmt: str, data: bytes) -> None:
        assert fmt is not None, "Gegl.Buffer.set needs a format name"
        source = babl_format(fmt)
        assert len(data) == rect.width * rect.height * source.bpp
        data = self._convert(data, source, self.format)
        self.owner.writes += 1
        n = self.format.bpp
        for j in range(rect.height):
            for i in range(rect.width):
                k, src = ((rect.y + j) * self.width + rect.x + i) * n, (j * rect.width + i) * n
                self.data[k : k + n] = data[src : src + n]

    def flush(self) -> None:
        self.flushed += 1


class Item:
    def __init__(self, name: str, width: int, height: int, fmt: str) -> None:
        self.name, self.offsets, self.parent = name, (0, 0), None
        self.writes, self.updates = 0, []
        self.buffer = Buffer(self, width, height, fmt)

    def get_format(self) -> Format:
        return self.buffer.format

    def has_alpha(self) -> bool:
        return self.buffer.format.has_alpha

    def get_name(self) -> str:
        return self.name

    def get_width(self) -> int:
        return self.buffer.width

    def get_height(self) -> int:
        return self.buffer.height

    def get_offsets(self) -> tuple[bool, int, int]:
        return (True, *self.offsets)

    def set_offsets(self, x: int, y: int) -> bool:
        self.offsets = (x, y)
        return True

    def get_buffer(self) -> Buffer:
        return self.buffer

    def get_parent(self):
        return self.parent

    def update(self, x, y, w, h) -> bool:
        self.updates.append((x, y, w, h))
        return True


class Layer(Item):
    created: list[tuple] = []

    def __init__(
        self, name: str, width: int, height: int, group: bool = False, fmt: str = RGBA_FORMAT
    ) -> None:
        super().__init__(name, width, height, fmt)
        self.group = group

    @classmethod
    def new(cls, image, name, width, height, image_type, opacity, mode) -> Layer:
        """Like GIMP: the layer has the image's precision."""
        cls.created.append((name, width, height, image_type, opacity, mode))
        layer = cls(name, width, height, fmt=image.layer_format(image_type == "RGBA_IMAGE"))
        layer.image = image
        return layer

    def is_group(self) -> bool:
        return self.group


class Channel(Item):
    def __init__(self, name: str, width: int, height: int) -> None:
        super().__init__(name, width, height, MASK_FORMAT)


class ImageBaseType(Enum):
    RGB = 0
    GRAY = 1
    INDEXED = 2


class Image:
    #: Layer formats (with alpha) of the precisions this fake knows.
    PRECISIONS = {"u8": "R'G'B'A u8", "u16": "R'G'B'A u16", "float": "RGBA float"}

    def __init__(self, width: int, height: int, base=ImageBaseType.RGB, precision="u8") -> None:
        self.size, self.base, self.precision = (width, height), base, precision
        self.layers: list[Layer] = []  # top first, like GIMP
        self.selection = Channel("selection", width, height)
        self.undo_depth, self.undo_groups, self.insert_depths = 0, 0, []

    def get_width(self) -> int:
        return self.size[0]

    def get_height(self) -> int:
        return self.size[1]

    def get_base_type(self) -> ImageBaseType:
        return self.base

    def layer_format(self, alpha: bool = True) -> str:
        name = self.PRECISIONS[self.precision]
        return name if alpha else name.replace("A ", " ")

    def get_selection(self) -> Channel:
        return self.selection

    def get_item_position(self, item) -> int:
        return self.layers.index(item)

    def insert_layer(self, layer, parent, position) -> bool:
        assert parent is None, "only top-level layers in this fake"
        self.insert_depths.append(self.undo_depth)
        self.layers.insert(position, layer)
        return True

    def undo_group_start(self) -> bool:
        self.undo_depth += 1
        self.undo_groups += 1
        return True

    def undo_group_end(self) -> bool:
        assert self.undo_depth > 0, "undo_group_end without a start"
        self.undo_depth -= 1
        return True

    # --- test helpers
    def select_rectangle(self, x: int, y: int, w: int, h: int, value: int = 255) -> None:
        width = self.size[0]
        for j in range(y, y + h):
            for i in range(x, x + w):
                self.selection.buffer.data[j * width + i] = value


class Selection:
    @staticmethod
    def bounds(image: Image) -> tuple[bool, bool, int, int, int, int]:
        data, (w, h) = image.selection.buffer.data, image.size
        points = [(i % w, i // w) for i, v in enumerate(data) if v]
        if not points:
            return True, False, 0, 0, w, h
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        return True, True, min(xs), min(ys), max(xs) + 1, max(ys) + 1


class PDBStatusType(Enum):
    SUCCESS = 0
    CANCEL = 1
    EXECUTION_ERROR = 2
    CALLING_ERROR = 3


class RunMode(Enum):
    INTERACTIVE = 0
    NONINTERACTIVE = 1


class Choice:
    def __init__(self) -> None:
        self.options: list[str] = []

    @classmethod
    def new(cls) -> Choice:
        return cls()

    def add(self, nick, ident, label, help_text) -> None:
        self.options.append(nick)


class Procedure:
    def __init__(self, plugin, name, proc_type, run_func, data) -> None:
        self.name, self.run_func = name, run_func
        self.arguments: dict[str, tuple] = {}
        self.menu_paths: list[str] = []
        self.settings: dict[str, object] = {}

    @classmethod
    def new(cls, plugin, name, proc_type, run_func, data) -> Procedure:
        return cls(plugin, name, proc_type, run_func, data)

    def __getattr__(self, name):
        if name.startswith("set_"):
            return lambda *args: self.settings.__setitem__(name[4:], args)
        if name.startswith("add_") and name.endswith("_argument"):
            return lambda arg, *rest: self.arguments.__setitem__(arg, (name, *rest))
        raise AttributeError(name)

    def add_menu_path(self, path: str) -> None:
        self.menu_paths.append(path)

    def new_return_values(self, status, error):
        return status, error


class Config:
    def __init__(self, **values) -> None:
        self.values = values

    def get_property(self, name: str):
        return self.values[name]


class GLibError:
    def __init__(self, message: str | None = None) -> None:
        self.message = message


class Dialog:
    answer = True
    shown: list[tuple] = []

    def __init__(self, procedure, config, title) -> None:
        self.title = title

    @classmethod
    def new(cls, procedure, config, title) -> Dialog:
        return cls(procedure, config, title)

    def fill(self, names) -> None:
        Dialog.shown.append((self.title, list(names)))

    def run(self) -> bool:
        return Dialog.answer

    def destroy(self) -> None:
        pass


class PlugIn:
    __gtype__ = "fake-gtype"


def make_modules() -> tuple[types.ModuleType, dict[str, types.ModuleType]]:
    """Fresh fake modules: (gi, {name: module}) to put into sys.modules."""
    calls: list[tuple] = []

    def recorder(name):
        return lambda *args: calls.append((name, *args))

    gimp = types.ModuleType("gi.repository.Gimp")
    gimp.__dict__.update(
        PlugIn=PlugIn,
        Layer=Layer,
        Image=Image,
        Selection=Selection,
        ImageBaseType=ImageBaseType,
        ImageType=types.SimpleNamespace(RGBA_IMAGE="RGBA_IMAGE", RGB_IMAGE="RGB_IMAGE"),
        LayerMode=types.SimpleNamespace(NORMAL="NORMAL"),
        PDBStatusType=PDBStatusType,
        PDBProcType=types.SimpleNamespace(PLUGIN="PLUGIN"),
        ProcedureSensitivityMask=types.SimpleNamespace(DRAWABLE="DRAWABLE"),
        RunMode=RunMode,
        Choice=Choice,
        ImageProcedure=Procedure,
        calls=calls,
        **{
            name: recorder(name)
            for name in (
                "progress_init",
                "progress_set_text",
                "progress_update",
                "progress_pulse",
                "progress_end",
                "displays_flush",
                "main",
            )
        },
    )
    gimpui = types.ModuleType("gi.repository.GimpUi")
    gimpui.__dict__.update(ProcedureDialog=Dialog, init=recorder("GimpUi.init"))
    gegl = types.ModuleType("gi.repository.Gegl")
    gegl.__dict__.update(Rectangle=Rectangle, AbyssPolicy=AbyssPolicy)
    glib = types.ModuleType("gi.repository.GLib")
    glib.Error = GLibError
    babl = types.ModuleType("gi.repository.Babl")
    babl.__dict__.update(
        get_name=lambda obj: obj.name,
        format_get_type=lambda fmt, index: types.SimpleNamespace(name=fmt.type),
        format_get_n_components=lambda fmt: fmt.components,
        format_has_alpha=lambda fmt: fmt.has_alpha,
    )
    gobject = types.ModuleType("gi.repository.GObject")
    gobject.ParamFlags = types.SimpleNamespace(READWRITE="READWRITE")
    repository = types.ModuleType("gi.repository")
    modules = {
        "Gimp": gimp,
        "GimpUi": gimpui,
        "Gegl": gegl,
        "Babl": babl,
        "GLib": glib,
        "GObject": gobject,
    }
    repository.__dict__.update(modules)
    gi = types.ModuleType("gi")
    gi.versions = {}
    gi.require_version = gi.versions.__setitem__
    gi.repository = repository
    out = {"gi": gi, "gi.repository": repository}
    out.update({f"gi.repository.{name}": module for name, module in modules.items()})
    return gi, out
