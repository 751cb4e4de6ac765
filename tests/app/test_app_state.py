"""DocumentState: layer operations and mask changes undo and redo."""

from __future__ import annotations

import numpy as np
import pytest

from cds_desktop.app.documents import Document, Layer
from cds_desktop.app.state import DocumentState


@pytest.fixture
def state(qtbot):
    s = DocumentState()
    pixels = np.zeros((8, 8, 4), np.uint8)
    s.set_document(Document(8, 8, [Layer("bottom", pixels), Layer("top", pixels.copy())]))
    return s


def names(state):
    return [layer.name for layer in state.doc.layers]


def test_new_document_is_clean_with_the_top_layer_active(state):
    assert not state.dirty and state.active_layer.name == "top"


def test_add_delete_move_undo_redo(state):
    extra = Layer("result", np.ones((8, 8, 4), np.uint8))
    state.add_layer(extra, 1)
    assert names(state) == ["bottom", "result", "top"] and state.active_uid == extra.uid
    assert state.dirty
    state.move_layer(extra.uid, 2)
    assert names(state) == ["bottom", "top", "result"]
    state.delete_layer(state.doc.layers[0].uid)
    assert names(state) == ["top", "result"]
    for expected in (
        ["bottom", "top", "result"],
        ["bottom", "result", "top"],
        ["bottom", "top"],
    ):
        state.undo.undo()
        assert names(state) == expected
    assert not state.dirty and state.active_layer.name == "top"
    for _ in range(3):
        state.undo.redo()
    assert names(state) == ["top", "result"]
    assert state.doc.layer(extra.uid).pixels is extra.pixels  # the same pixels come back


def test_rename_visibility_opacity(state, qtbot):
    uid = state.doc.layers[0].uid
    state.rename_layer(uid, "  renamed ")
    state.rename_layer(uid, "   ")  # refused: no empty names
    state.set_visible(uid, False)
    state.set_opacity(uid, 0.7)
    state.set_opacity(uid, 0.4)  # a slider drag merges into one step
    layer = state.doc.layer(uid)
    assert (layer.name, layer.visible, layer.opacity) == ("renamed", False, 0.4)
    assert state.undo.count() == 3
    state.undo.undo()
    assert layer.opacity == 1.0
    state.undo.undo()
    state.undo.undo()
    assert (layer.name, layer.visible) == ("bottom", True)


def test_mask_change_undo_redo_and_signal(state, qtbot):
    layer = state.active_layer
    before = layer.mask.copy()
    layer.mask[2:4, 1:5] = 255
    with qtbot.waitSignal(state.maskChanged) as blocker:
        state.commit_mask(layer.uid, (1, 2, 5, 4), before, "stroke")
    state.undo.undo()
    assert blocker.args[0] == layer.uid
    assert not layer.mask.any()
    state.undo.redo()
    assert layer.mask[2:4, 1:5].all() and layer.mask.sum() == 255 * 8
    unchanged = layer.mask.copy()
    state.commit_mask(layer.uid, (0, 0, 8, 8), unchanged, "nothing")  # no-op: not recorded
    assert state.undo.count() == 1


def test_mask_operations_are_undoable(state):
    layer = state.active_layer
    layer.pixels[..., 3] = 200
    assert state.mask_operation("from_alpha")
    assert (layer.mask == 200).all()
    state.mask_operation("invert")
    assert (layer.mask == 55).all()
    state.undo.undo()
    state.undo.undo()
    assert not layer.mask.any()
