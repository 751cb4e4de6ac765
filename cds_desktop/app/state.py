"""The open document as a Qt model: layers, the active layer, masks and an undo stack.

Widgets never change a :class:`Document` directly: they call :class:`DocumentState`, which
pushes a QUndoCommand (so strokes and layer operations undo/redo) and emits signals.
Selecting the active layer is not an undoable edit.
"""

from __future__ import annotations

import logging

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal
from PyQt6.QtGui import QUndoCommand, QUndoStack

from . import masking
from .documents import Document, Layer
from .masking import Box

log = logging.getLogger(__name__)


class DocumentState(QObject):
    documentReplaced = pyqtSignal()
    layersChanged = pyqtSignal()  # order, names, visibility, opacity, added/removed
    activeLayerChanged = pyqtSignal(int)  # uid, or 0 for none
    maskChanged = pyqtSignal(int, object)  # layer uid, box (x0, y0, x1, y1) or None = all

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.doc: Document | None = None
        self.undo = QUndoStack(self)

    # ------------------------------------------------------------------ document
    def set_document(self, doc: Document | None) -> None:
        self.undo.clear()
        self.doc = doc
        if doc is not None and (doc.active_uid is None or doc.layer(doc.active_uid) is None):
            doc.active_uid = doc.layers[-1].uid if doc.layers else None
        self.undo.setClean()
        self.documentReplaced.emit()
        self.layersChanged.emit()
        self.activeLayerChanged.emit(self.active_uid or 0)

    @property
    def dirty(self) -> bool:
        return self.doc is not None and not self.undo.isClean()

    def mark_saved(self) -> None:
        self.undo.setClean()

    # ------------------------------------------------------------------ active layer
    @property
    def active_uid(self) -> int | None:
        return self.doc.active_uid if self.doc else None

    @property
    def active_layer(self) -> Layer | None:
        if self.doc is None or self.doc.active_uid is None:
            return None
        return self.doc.layer(self.doc.active_uid)

    def set_active(self, uid: int | None) -> None:
        if self.doc is None or uid == self.doc.active_uid:
            return
        if uid is not None and self.doc.layer(uid) is None:
            return
        self.doc.active_uid = uid
        self.activeLayerChanged.emit(uid or 0)

    # ------------------------------------------------------------------ layer operations
    def add_layer(self, layer: Layer, index: int, text: str | None = None) -> None:
        """Insert ``layer`` (undoable); a name another layer has gets a number (``#2``)."""
        layer.name = self.doc.unique_name(layer.name)
        self.undo.push(AddLayer(self, layer, index, text or f"Add layer {layer.name!r}"))

    def delete_layer(self, uid: int) -> None:
        if self.doc is not None and self.doc.layer(uid) is not None:
            self.undo.push(DeleteLayer(self, uid))

    def move_layer(self, uid: int, index: int) -> None:
        if self.doc is None or self.doc.layer(uid) is None:
            return
        index = max(0, min(len(self.doc.layers) - 1, index))
        if index != self.doc.index_of(uid):
            self.undo.push(MoveLayer(self, uid, index))

    def rename_layer(self, uid: int, name: str) -> None:
        name = name.strip()
        if name:
            self._set_property(uid, "name", name, f"Rename layer to {name!r}")

    def set_visible(self, uid: int, visible: bool) -> None:
        self._set_property(uid, "visible", bool(visible), "Show layer" if visible else "Hide layer")

    def set_opacity(self, uid: int, opacity: float) -> None:
        value = min(1.0, max(0.0, float(opacity)))
        self._set_property(uid, "opacity", value, "Layer opacity")

    def _set_property(self, uid: int, attr: str, value, text: str) -> None:
        layer = self.doc.layer(uid) if self.doc else None
        if layer is not None and getattr(layer, attr) != value:
            self.undo.push(SetLayerProperty(self, uid, attr, getattr(layer, attr), value, text))

    # ------------------------------------------------------------------ masks
    def commit_mask(self, uid: int, box: Box | None, before: np.ndarray, text: str) -> None:
        """Record a mask change already applied to the layer's mask.

        ``before`` is the whole mask as it was before the change; only ``box`` is stored.
        """
        layer = self.doc.layer(uid) if self.doc else None
        if layer is None or box is None:
            return
        x0, y0, x1, y1 = box
        old = before[y0:y1, x0:x1].copy()
        new = layer.mask[y0:y1, x0:x1].copy()
        if np.array_equal(old, new):
            return
        self.undo.push(MaskChange(self, uid, box, old, new, text))

    def mask_operation(self, name: str, radius: float = 0.0) -> bool:
        """Run invert | clear | from_alpha | feather on the active layer's mask (undoable)."""
        layer = self.active_layer
        if layer is None:
            return False
        before = layer.mask.copy()
        ops = {
            "invert": lambda m: masking.invert(m),
            "clear": lambda m: masking.clear(m),
            "from_alpha": lambda m: masking.from_alpha(m, layer.pixels),
            "feather": lambda m: masking.feather(m, radius),
        }
        box = ops[name](layer.mask)
        texts = {"invert": "Invert mask", "clear": "Clear mask", "feather": "Feather mask"}
        self.maskChanged.emit(layer.uid, box)
        self.commit_mask(layer.uid, box, before, texts.get(name, "Mask from alpha"))
        return True

    # ------------------------------------------------------------------ used by commands
    def _insert(self, layer: Layer, index: int) -> None:
        self.doc.layers.insert(index, layer)
        self.layersChanged.emit()

    def _remove(self, uid: int) -> tuple[Layer, int]:
        index = self.doc.index_of(uid)
        layer = self.doc.layers.pop(index)
        if self.doc.active_uid == uid:
            rest = self.doc.layers
            fallback = rest[min(index, len(rest) - 1)].uid if rest else None
            self.doc.active_uid = fallback
            self.activeLayerChanged.emit(fallback or 0)
        self.layersChanged.emit()
        return layer, index


class AddLayer(QUndoCommand):
    def __init__(self, state: DocumentState, layer: Layer, index: int, text: str) -> None:
        super().__init__(text)
        self.state, self.layer, self.index = state, layer, index
        self.previous_active: int | None = state.active_uid

    def redo(self) -> None:
        self.state._insert(self.layer, self.index)
        self.state.set_active(self.layer.uid)

    def undo(self) -> None:
        self.state._remove(self.layer.uid)
        self.state.set_active(self.previous_active)


class DeleteLayer(QUndoCommand):
    def __init__(self, state: DocumentState, uid: int) -> None:
        layer = state.doc.layer(uid)
        super().__init__(f"Delete layer {layer.name!r}")
        self.state, self.uid = state, uid
        self.layer: Layer | None = None
        self.index = 0

    def redo(self) -> None:
        self.layer, self.index = self.state._remove(self.uid)

    def undo(self) -> None:
        self.state._insert(self.layer, self.index)
        self.state.set_active(self.uid)


class MoveLayer(QUndoCommand):
    def __init__(self, state: DocumentState, uid: int, index: int) -> None:
        super().__init__("Move layer")
        self.state, self.uid, self.to = state, uid, index
        self.frm = state.doc.index_of(uid)

    def _move(self, frm: int, to: int) -> None:
        layers = self.state.doc.layers
        layers.insert(to, layers.pop(frm))
        self.state.layersChanged.emit()

    def redo(self) -> None:
        self._move(self.frm, self.to)

    def undo(self) -> None:
        self._move(self.to, self.frm)


class SetLayerProperty(QUndoCommand):
    MERGE_ID = 1

    def __init__(self, state, uid: int, attr: str, old, new, text: str) -> None:
        super().__init__(text)
        self.state, self.uid, self.attr, self.old, self.new = state, uid, attr, old, new

    def _apply(self, value) -> None:
        setattr(self.state.doc.layer(self.uid), self.attr, value)
        self.state.layersChanged.emit()

    def redo(self) -> None:
        self._apply(self.new)

    def undo(self) -> None:
        self._apply(self.old)

    def id(self) -> int:  # noqa: A003 - Qt API
        return self.MERGE_ID if self.attr == "opacity" else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt API
        """Consecutive opacity changes of one layer (a slider drag) undo as one step."""
        if not isinstance(other, SetLayerProperty) or (other.uid, other.attr) != (
            self.uid,
            self.attr,
        ):
            return False
        self.new = other.new
        return True


class MaskChange(QUndoCommand):
    def __init__(self, state, uid: int, box: Box, old: np.ndarray, new: np.ndarray, text: str):
        super().__init__(text)
        self.state, self.uid, self.box, self.old, self.new = state, uid, box, old, new

    def _apply(self, patch: np.ndarray) -> None:
        layer = self.state.doc.layer(self.uid)
        x0, y0, x1, y1 = self.box
        layer.mask[y0:y1, x0:x1] = patch
        self.state.maskChanged.emit(self.uid, self.box)

    def redo(self) -> None:
        self._apply(self.new)

    def undo(self) -> None:
        self._apply(self.old)
