"""EditController without a window: requests, checks before queueing, previews, result layers.

The engine is a ScriptedQueue (tests/app/app_fakes.py): the test plays the worker's events.
"""

from __future__ import annotations

import numpy as np
import pytest
from app_fakes import ScriptedProgress, ScriptedQueue, result_for

from cds_desktop.app.documents import Document, Layer
from cds_desktop.app.editing import EditController, EditInputs, LayerTag
from cds_desktop.app.state import DocumentState
from cds_desktop.engine.jobs import EventKind
from cds_desktop.engine.settings import EditSettings

SETTINGS = EditSettings(steps=4, working_size=32, seed=7)


def inputs(*targets: str, source: str = "a red circle") -> EditInputs:
    return EditInputs(source, tuple(targets or ("a blue circle",)), SETTINGS, "tiny-random")


@pytest.fixture
def setup(qtbot):
    state = DocumentState()
    layer = Layer("photo", np.full((20, 30, 4), 200, np.uint8), x=5, y=3)
    state.set_document(Document(40, 30, [layer]))
    queue = ScriptedQueue()
    controller = EditController(state, queue, engine_options=lambda: {"device": "cpu"})
    seen = {"errors": [], "status": [], "previews": [], "history": [], "targets": []}
    controller.error.connect(seen["errors"].append)
    controller.status.connect(seen["status"].append)
    controller.previewChanged.connect(lambda rgb, rect, crop: seen["previews"].append((rect, crop)))
    controller.historyAdded.connect(seen["history"].append)
    controller.targetsChanged.connect(seen["targets"].append)
    yield state, layer, queue, controller, seen
    controller.shutdown()


def paint(layer: Layer, box=(4, 2, 12, 9)) -> None:
    x0, y0, x1, y1 = box
    layer.mask[y0:y1, x0:x1] = 255


def finish(queue, job, values=(10, 20)):
    """Play started -> done with one result per target prompt."""
    queue.play(job, EventKind.STARTED, message="tiny")
    results = tuple(result_for(job.request, v) for v in values[: len(job.request.target_prompts)])
    queue.play(job, EventKind.DONE, result=results[0], results=results, message="done in 0.1 s")


def test_several_targets_are_one_job_whose_results_become_layers_above_the_source(qtbot, setup):
    state, layer, queue, controller, seen = setup
    paint(layer)
    job_id = controller.start(inputs("a blue circle", "a green square"))
    assert job_id is not None and len(queue.submitted) == 1
    request = queue.submitted[0].request
    assert request.target_prompts == ("a blue circle", "a green square")
    assert request.tag == LayerTag(state.doc.uid, layer.uid)
    assert request.origin == "app" and request.device == "cpu"
    assert np.array_equal(request.mask, layer.mask)
    finish(queue, queue.submitted[0])
    qtbot.waitUntil(lambda: len(state.doc.layers) == 3)
    names = [lay.name for lay in state.doc.layers]
    assert names == ["photo", "a blue circle (seed 7)", "a green square (seed 7)"]
    first, second = state.doc.layers[1:]
    assert (first.pixels[..., 0] == 10).all() and (second.pixels[..., 0] == 20).all()
    assert all(r.source_uid == layer.uid and (r.x, r.y) == (5, 3) for r in (first, second))
    assert state.active_uid == second.uid
    assert [e.target_prompt for e in seen["history"]] == ["a blue circle", "a green square"]
    assert seen["targets"] == [["a blue circle", "a green square"], []]
    state.undo.undo()
    state.undo.undo()
    assert state.doc.layers == [layer]


def test_results_keep_the_mask_so_edit_again_does_not_edit_the_whole_result(qtbot, setup):
    state, layer, queue, controller, seen = setup
    paint(layer)
    painted = layer.mask.copy()
    asked = []
    controller.ask_whole_layer = lambda lay: asked.append(lay) or True
    controller.start(inputs())
    finish(queue, queue.submitted[0])
    qtbot.waitUntil(lambda: len(state.doc.layers) == 2)
    result = state.active_layer
    assert result.source_uid == layer.uid
    assert np.array_equal(layer.mask, painted), "the source keeps its mask"
    assert np.array_equal(result.mask, painted), "the result carries the mask that made it"
    assert result.mask is not layer.mask
    controller.start(inputs("a pig"))  # Edit again, on the active result
    assert not asked
    again = queue.submitted[1].request
    assert again.tag.layer_uid == result.uid and np.array_equal(again.mask, painted)


def test_empty_mask_asks_and_a_no_queues_nothing(setup):
    state, layer, queue, controller, seen = setup
    asked = []
    controller.ask_whole_layer = lambda lay: asked.append(lay.name) or False
    assert controller.start(inputs()) is None
    assert asked == ["photo"] and queue.submitted == []
    assert seen["status"] and "mask" in seen["status"][-1]
    controller.ask_whole_layer = lambda lay: True
    assert controller.start(inputs()) is not None
    assert queue.submitted[0].request.mask is None  # the whole layer, as agreed


@pytest.mark.parametrize(
    "given, message",
    [
        (inputs(source="  "), "source prompt is empty"),
        (inputs("a blue circle", " "), "target prompt is empty"),
        (EditInputs("a cat", (), SETTINGS, "tiny-random"), "target prompt is empty"),
    ],
)
def test_empty_prompts_are_refused_before_queueing(setup, given, message):
    state, layer, queue, controller, seen = setup
    paint(layer)
    controller.ask_whole_layer = lambda lay: pytest.fail("no question for a refused edit")
    assert controller.start(given) is None
    assert queue.submitted == [] and message in seen["errors"][-1]


def test_no_document_is_refused(qtbot):
    controller = EditController(DocumentState(), ScriptedQueue())
    errors = []
    controller.error.connect(errors.append)
    assert controller.start(inputs()) is None and "open an image" in errors[0]
    controller.shutdown()


def test_preview_goes_to_document_coordinates_and_follows_the_chosen_target(qtbot, setup):
    state, layer, queue, controller, seen = setup
    paint(layer)
    controller.start(inputs("a blue circle", "a green square"))
    job = queue.submitted[0]
    queue.play(job, EventKind.STARTED, message="tiny")
    qtbot.waitUntil(lambda: bool(seen["targets"]))
    controller.set_preview_index(1)
    progress = ScriptedProgress(step=4, total=4, box=(2, 1, 14, 11), count=2)
    queue.play(job, EventKind.PROGRESS, progress=progress)
    qtbot.waitUntil(lambda: bool(seen["previews"]))
    assert progress.asked == [1]
    rect, crop = seen["previews"][-1]
    assert (rect.x(), rect.y(), rect.width(), rect.height()) == (7, 4, 12, 10)
    assert crop.shape == (10, 12) and np.array_equal(crop, layer.mask[1:11, 2:14])
    finish(queue, job)
    assert controller.preview_index == 1  # reset when the next job starts


def test_results_of_a_closed_layer_are_dropped_with_a_message(qtbot, setup):
    state, layer, queue, controller, seen = setup
    paint(layer)
    controller.start(inputs())
    state.delete_layer(layer.uid)
    finish(queue, queue.submitted[0])
    qtbot.waitUntil(lambda: bool(seen["errors"]))
    assert "result dropped" in seen["errors"][-1] and state.doc.layers == []


def test_a_result_of_a_result_lands_on_top_of_its_group_with_a_unique_name(qtbot, setup):
    state, layer, queue, controller, seen = setup
    paint(layer)
    for _ in range(2):  # two results of the source, same prompt and seed
        state.set_active(layer.uid)
        controller.start(inputs())
        finish(queue, queue.submitted[-1])
    qtbot.waitUntil(lambda: len(state.doc.layers) == 3)
    names = [lay.name for lay in state.doc.layers]
    assert names == ["photo", "a blue circle (seed 7)", "a blue circle (seed 7) #2"]
    first_result = state.doc.layers[1]
    state.set_active(first_result.uid)  # edit the older result again
    controller.start(inputs("a pig"))
    finish(queue, queue.submitted[-1])
    qtbot.waitUntil(lambda: len(state.doc.layers) == 4)
    top = state.doc.layers[-1]
    assert top.name == "a pig (seed 7)" and top.source_uid == first_result.uid


def test_failure_and_cancel_are_reported(qtbot, setup):
    state, layer, queue, controller, seen = setup
    paint(layer)
    controller.start(inputs())
    controller.start(inputs())
    first, second = queue.submitted
    queue.play(first, EventKind.FAILED, error="model 'x' not found", failure=None)
    queue.play(second, EventKind.CANCELLED, message="cancelled before it started")
    qtbot.waitUntil(lambda: bool(seen["errors"]) and bool(seen["status"]))
    assert seen["errors"] == ["edit failed: model 'x' not found"]
    assert "cancelled" in seen["status"][-1] and len(state.doc.layers) == 1
