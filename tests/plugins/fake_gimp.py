"""A fake of exactly the GIMP 3.0 / GEGL calls cds_gimp.py makes, as ``gi.repository``
modules. Semantics follow GIMP 3.0: drawable buffers are in drawable-local coordinates, the
selection channel's buffer in image coordinates; ``get_offsets()`` and
``Gimp.Selection.bounds()`` return GI out-tuples with leading booleans; the layer stack is
listed top first and ``insert_layer(layer, parent, position)`` puts the layer at
``position`` (0 = top). Everything the plug-in does is recorded for the tests."""

from __future__ import annotations

import types
from enum import Enum

RGBA_FORMAT, MASK_FORMAT = "R'G'B'A u8", "Y u8"


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
    """Pixels of one item: ``channels`` bytes per pixel, local coordinates."""

    def __init__(self, owner, width: int, height: int, channels: int, fmt: str) -> None:
        self.owner, self.width, self.height = owner, width, height
        self.channels, self.format = channels, fmt
        self.data = bytearray(width * height * channels)
        self.flushed = 0

    def get(self, rect: Rectangle, scale: float, fmt: str, abyss: AbyssPolicy) -> bytes:
        assert scale == 1.0 and fmt == self.format, (scale, fmt)
        out = bytearray()
        n = self.channels
        for y in range(rect.y, rect.y + rect.height):
            for x in range(rect.x, rect.x + rect.width):
                if abyss is AbyssPolicy.CLAMP:
                    x, y = min(max(x, 0), self.width - 1), min(max(y, 0), self.height - 1)
                elif not (0 <= x < self.width and 0 <= y < self.height):
                    out += bytes(n)
                    continue
                k = (y * self.width + x) * n
                out += self.data[k : k + n]
        return bytes(out)

    def set(self, rect: Rectangle, fmt: str, data: bytes) -> None:
        assert fmt == self.format, fmt
        assert len(data) == rect.width * rect.height * self.channels
        self.owner.writes += 1
        n = self.channels
        for j in range(rect.height):
            for i in range(rect.width):
                k, src = ((rect.y + j) * self.width + rect.x + i) * n, (j * rect.width + i) * n
                self.data[k : k + n] = data[src : src + n]

    def flush(self) -> None:
        self.flushed += 1


class Item:
    def __init__(self, name: str, width: int, height: int, channels: int, fmt: str) -> None:
        self.name, self.offsets, self.parent = name, (0, 0), None
        self.writes, self.updates = 0, []
        self.buffer = Buffer(self, width, height, channels, fmt)

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

    def __init__(self, name: str, width: int, height: int, group: bool = False) -> None:
        super().__init__(name, width, height, 4, RGBA_FORMAT)
        self.group = group

    @classmethod
    def new(cls, image, name, width, height, image_type, opacity, mode) -> Layer:
        cls.created.append((name, width, height, image_type, opacity, mode))
        layer = cls(name, width, height)
        layer.image = image
        return layer

    def is_group(self) -> bool:
        return self.group


class Channel(Item):
    def __init__(self, name: str, width: int, height: int) -> None:
        super().__init__(name, width, height, 1, MASK_FORMAT)


class ImageBaseType(Enum):
    RGB = 0
    GRAY = 1
    INDEXED = 2


class Image:
    def __init__(self, width: int, height: int, base=ImageBaseType.RGB) -> None:
        self.size, self.base = (width, height), base
        self.layers: list[Layer] = []  # top first, like GIMP
        self.selection = Channel("selection", width, height)
        self.undo_depth, self.undo_groups, self.insert_depths = 0, 0, []

    def get_width(self) -> int:
        return self.size[0]

    def get_height(self) -> int:
        return self.size[1]

    def get_base_type(self) -> ImageBaseType:
        return self.base

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
        ImageType=types.SimpleNamespace(RGBA_IMAGE="RGBA_IMAGE"),
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
    gobject = types.ModuleType("gi.repository.GObject")
    gobject.ParamFlags = types.SimpleNamespace(READWRITE="READWRITE")
    repository = types.ModuleType("gi.repository")
    modules = {"Gimp": gimp, "GimpUi": gimpui, "Gegl": gegl, "GLib": glib, "GObject": gobject}
    repository.__dict__.update(modules)
    gi = types.ModuleType("gi")
    gi.versions = {}
    gi.require_version = gi.versions.__setitem__
    gi.repository = repository
    out = {"gi": gi, "gi.repository": repository}
    out.update({f"gi.repository.{name}": module for name, module in modules.items()})
    return gi, out
