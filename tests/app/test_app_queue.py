"""What the window shows about jobs: the shared queue (plug-in jobs too), several-target
edits, the empty-mask question and the checks made before anything is queued."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from app_fakes import ScriptedProgress, ScriptedQueue, result_for
from PIL import Image
from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication, QMessageBox
from test_app_window import RUN_TIMEOUT, paint_stroke, run_and_wait

from cds_desktop.engine.jobs import EventKind
from plugin_bridge import protocol as P
from plugin_bridge.client import BridgeClient

TOKEN = "t" * 64


def answer_question(qtbot, button_text: str, seen: list) -> None:
    """Click ``button_text`` in the next modal message box (and note what it said)."""

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, click)
            return
        seen.append(f"{box.text()} {box.informativeText()}")
        button = next(b for b in box.buttons() if b.text().replace("&", "") == button_text)
        button.click()

    QTimer.singleShot(0, click)


def row_texts(window) -> list[str]:
    return [
        f"{row.origin.text()} {row.title.text()} {row.state.text()}"
        for row in window.queue_panel.rows.values()
    ]


# ----------------------------------------------------------------------------- plug-in jobs
def test_a_plugin_job_shows_in_the_queue_and_can_be_cancelled_there(
    qtbot, make_window, circle_png, fast_values
):
    window = make_window(bridge_options={"port": 0, "token": TOKEN, "host": "127.0.0.1"})
    window.open_path(circle_png)
    paint_stroke(window, [(14, 20), (34, 20)])
    window.bridge_action.trigger()
    qtbot.waitUntil(lambda: window.bridge.running)
    png = io.BytesIO()
    Image.open(circle_png).save(png, format="PNG")
    outcome = []

    def krita() -> None:  # the plug-in, in its own process in real life
        with BridgeClient(
            port=window.bridge.server.port, token=TOKEN, timeout=60, client_name="cds-krita"
        ) as client:
            job = client.submit_edit(
                png.getvalue(), "a red circle", "a blue circle", settings={"steps": 100000}
            )
            outcome.extend(client.events(job, timeout=60))

    thread = threading.Thread(target=krita)
    thread.start()
    try:
        qtbot.waitUntil(lambda: any("step" in t for t in row_texts(window)), timeout=RUN_TIMEOUT)
        assert row_texts(window)[0].startswith("[Krita] a blue circle step ")
        status = window.progress.status.text()
        assert status.startswith("Krita: editing") and "Ready" not in status
        assert window.progress.cancel.isEnabled()
        # an app edit waits behind it, visibly
        window.prompt.set_values(fast_values())
        finished = []
        window.worker.finished.connect(lambda update, record: finished.append(update))
        assert len(window.start_edit()) == 1
        qtbot.waitUntil(lambda: len(window.queue_panel.rows) == 2)
        assert window.progress.queue.text() == "1 queued"
        assert row_texts(window)[1] == "[app] a blue circle queued"
        krita_row = next(iter(window.queue_panel.rows.values()))
        krita_row.cancel.click()
        qtbot.waitUntil(lambda: bool(finished), timeout=RUN_TIMEOUT)
    finally:
        if thread.is_alive() and window.bridge.server is not None:
            window.queue_view.cancel_all()
        thread.join(60)
    assert outcome[-1].type == P.ERROR and outcome[-1].get("code") == P.CANCELLED
    assert finished[0].kind is EventKind.DONE  # the app's edit ran after the cancelled one
    qtbot.waitUntil(lambda: window.progress.status.text().startswith("Ready"))
    window.bridge_action.trigger()


def test_the_panel_never_says_ready_while_a_plugin_job_waits_or_runs(qtbot, make_window):
    queue = ScriptedQueue()
    window = make_window(queue=queue)
    assert window.progress.status.text() == "Ready" and not window.queue_panel.isVisible()
    from cds_desktop.engine.jobs import EditRequest

    gimp = queue.submit(
        EditRequest(np.zeros((8, 8, 3), np.uint8), "a", "b", origin="cds-gimp"), None
    )
    qtbot.waitUntil(lambda: window.queue_panel.isVisible())
    assert window.progress.status.text() == "1 job waiting"
    assert window.progress.cancel_all.isEnabled()
    queue.play(gimp, EventKind.STARTED, message="model")
    queue.play(gimp, EventKind.PROGRESS, progress=ScriptedProgress(3, 200, (0, 0, 8, 8)))
    qtbot.waitUntil(lambda: "step 3/200" in window.progress.bar.format())
    assert window.progress.status.text() == "GIMP: editing: b"
    assert row_texts(window) == ["[GIMP] b step 3/200"]
    assert window.actions["cancel"].isEnabled()  # Edit > Cancel edit reaches plug-in jobs too
    window.progress.cancel.click()
    assert gimp.cancelled
    queue.play(gimp, EventKind.CANCELLED, message="cancelled at step 3/200")
    qtbot.waitUntil(lambda: window.progress.status.text() == "Ready (cancelled)")
    assert not window.queue_panel.isVisible()


# ----------------------------------------------------------------------------- several targets
def test_several_targets_are_one_job_with_a_preview_choice_and_one_layer_each(
    qtbot, make_window, circle_png, fast_values
):
    queue = ScriptedQueue()
    window = make_window(queue=queue)
    window.open_path(circle_png)
    source = window.state.active_layer
    paint_stroke(window, [(14, 20), (34, 20)])
    window.prompt.set_values(fast_values(targets="a blue circle\na green square\na cow"))
    window.prompt.edit_button.click()
    assert len(queue.submitted) == 1, "several targets are one job"
    job = queue.submitted[0]
    assert job.request.target_prompts == ("a blue circle", "a green square", "a cow")
    queue.play(job, EventKind.STARTED, message="tiny")
    choice = window.progress.preview_target
    qtbot.waitUntil(choice.isVisible)
    assert [choice.itemText(i) for i in range(choice.count())] == [
        "a blue circle",
        "a green square",
        "a cow",
    ]
    choice.setCurrentIndex(2)  # the user picks the cow
    progress = ScriptedProgress(5, 20, (10, 10, 38, 30), count=3)
    queue.play(job, EventKind.PROGRESS, progress=progress)
    qtbot.waitUntil(lambda: window.canvas.has_preview)
    assert progress.asked == [2]
    assert row_texts(window) == ["[app] a blue circle | a green square | a cow step 5/20"]
    window.progress.cancel.click()  # one job: cancel stops all three
    assert job.cancelled
    results = tuple(result_for(job.request, v) for v in (10, 20, 30))
    queue.play(job, EventKind.DONE, result=results[0], results=results, message="done")
    qtbot.waitUntil(lambda: len(window.state.doc.layers) == 4)
    layers = window.state.doc.layers
    assert [lay.name for lay in layers] == [
        "circle",
        "a blue circle (seed 0)",
        "a green square (seed 0)",
        "a cow (seed 0)",
    ]
    assert all(lay.source_uid == source.uid for lay in layers[1:])
    assert [int(lay.pixels[0, 0, 0]) for lay in layers[1:]] == [10, 20, 30]
    assert not window.canvas.has_preview and not choice.isVisible()
    assert len(window.history.entries) == 3
    # one edit is one undo step: Edit > Undo takes all three result layers back
    undo = window.actions["undo"]
    assert undo.text().replace("&", "") == "Undo Edit: a blue circle | a green square | a cow"
    undo.trigger()
    assert [lay.name for lay in window.state.doc.layers] == ["circle"]
    window.actions["redo"].trigger()
    assert len(window.state.doc.layers) == 4


# ----------------------------------------------------------------------------- empty mask
def test_an_empty_mask_asks_before_editing_the_whole_layer(
    qtbot, make_window, circle_png, fast_values
):
    queue = ScriptedQueue()
    window = make_window(queue=queue)
    window.editor.ask_whole_layer = window._ask_whole_layer  # the real dialog
    window.open_path(circle_png)
    window.prompt.set_values(fast_values())
    said = []
    answer_question(qtbot, "Cancel", said)
    window.prompt.edit_button.click()
    assert said and "empty" in said[0] and "circle" in said[0]
    assert queue.submitted == []
    answer_question(qtbot, "Edit whole layer", said)
    window.prompt.edit_button.click()
    assert len(said) == 2 and len(queue.submitted) == 1
    assert queue.submitted[0].request.mask is None


def test_a_mask_painted_outside_the_layer_counts_as_empty(
    qtbot, make_window, circle_png, fast_values
):
    queue = ScriptedQueue()
    window = make_window(queue=queue)
    window.editor.ask_whole_layer = window._ask_whole_layer
    window.open_path(circle_png)
    window.prompt.set_values(fast_values())
    paint_stroke(window, [(-30, -30), (-10, -20)])  # off the 48x40 image
    said = []
    answer_question(qtbot, "Cancel", said)
    window.prompt.edit_button.click()
    assert said and queue.submitted == []


def test_edit_again_after_a_result_reuses_its_mask_without_asking(
    qtbot, window, circle_png, fast_values
):
    window.editor.ask_whole_layer = lambda layer: (_ for _ in ()).throw(
        AssertionError("a result made with a mask must not ask about an empty mask")
    )
    window.open_path(circle_png)
    source = window.state.active_layer
    paint_stroke(window, [(14, 20), (34, 20)])
    painted = source.mask.copy()
    window.prompt.set_values(fast_values())
    finished = []
    window.worker.finished.connect(lambda update, record: finished.append(update))
    window.prompt.edit_button.click()
    qtbot.waitUntil(lambda: len(finished) == 1, timeout=RUN_TIMEOUT)
    result = window.state.active_layer
    assert result.source_uid == source.uid and np.array_equal(result.mask, painted)
    assert np.array_equal(source.mask, painted)
    window.prompt.edit_button.click()  # Edit again: the result, inside the same mask
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=RUN_TIMEOUT)
    assert finished[1].kind is EventKind.DONE
    again = window.state.active_layer
    outside = painted == 0
    assert np.array_equal(again.pixels[outside], source.pixels[outside])


def test_empty_source_prompt_is_refused_before_queueing(qtbot, make_window, circle_png):
    queue = ScriptedQueue()
    window = make_window(queue=queue)
    window.open_path(circle_png)
    window.prompt.set_values({"source": "  ", "targets": "a blue circle"})
    window.prompt.edit_button.click()
    assert queue.submitted == []
    assert "source prompt is empty" in window.progress.error.text()


# ----------------------------------------------------------------------------- thin masks
def test_a_thin_mask_along_the_image_edge_edits(qtbot, window, tmp_path, fast_values):
    """A one-pixel strip along the top edge (drawn with the Rect tool past the edge) used to
    end in "internal error ... Output size is too small"."""
    path = tmp_path / "wide.png"
    Image.new("RGB", (192, 128), (90, 90, 90)).save(path)
    window.open_path(path)
    source = window.state.active_layer
    paint_stroke(window, [(40, -6), (140, 1)], tool="rect")
    assert source.mask[0, 40:140].all() and not source.mask[1:].any()
    window.prompt.set_values(fast_values())
    finished = []
    window.worker.finished.connect(lambda update, record: finished.append(update))
    window.prompt.edit_button.click()
    qtbot.waitUntil(lambda: bool(finished), timeout=RUN_TIMEOUT)
    assert finished[0].kind is EventKind.DONE, finished[0].error
    assert not window.progress.error.isVisible()
    result = window.state.doc.layers[-1]
    assert np.array_equal(result.pixels[1:], source.pixels[1:])


def test_several_targets_run_for_real_as_one_shared_edit(qtbot, window, circle_png, fast_values):
    window.open_path(circle_png)
    source = window.state.active_layer
    paint_stroke(window, [(14, 20), (34, 20)])
    window.prompt.set_values(fast_values(targets="a blue circle\na green square", steps=30))
    finished, previews = [], []
    window.worker.finished.connect(lambda update, record: finished.append(update))
    window.worker.progressed.connect(lambda update: previews.append(update.preview is not None))
    window.prompt.edit_button.click()
    qtbot.waitUntil(window.progress.preview_target.isVisible, timeout=RUN_TIMEOUT)
    window.progress.preview_target.setCurrentIndex(1)
    qtbot.waitUntil(lambda: bool(finished), timeout=RUN_TIMEOUT)
    assert finished[0].kind is EventKind.DONE, finished[0].error
    names = [layer.name for layer in window.state.doc.layers]
    assert names == ["circle", "a blue circle (seed 0)", "a green square (seed 0)"]
    blue, green = window.state.doc.layers[1:]
    assert blue.source_uid == green.source_uid == source.uid
    assert not np.array_equal(blue.pixels, green.pixels)
    assert any(previews) and window.worker.preview_index == 1


# ----------------------------------------------------------------------------- layout
def fully_visible(widget) -> bool:
    """Shown and not cut by any scroll area or other ancestor (visibleRegion is clipped)."""
    return widget.isVisible() and widget.visibleRegion().boundingRect() == widget.rect()


@pytest.mark.parametrize("size", [(1280, 800), (900, 600)])
def test_cancel_buttons_stay_in_view_with_a_busy_queue(qtbot, make_window, circle_png, size):
    """A several-target app job running (preview choice shown) and a plug-in job and two more
    app jobs waiting: Edit, every Cancel button and the queue count are in view; the prompt
    fields scroll on a short screen, and no scroll bar lies over any of them."""
    queue = ScriptedQueue()
    window = make_window(queue=queue)
    window.resize(*size)
    window.open_path(circle_png)
    paint_stroke(window, [(14, 20), (34, 20)])
    window.prompt.set_values({"source": "a red circle", "targets": "a blue circle\na green one"})
    window.prompt.edit_button.click()
    app_job = queue.submitted[0]
    from cds_desktop.engine.jobs import EditRequest

    queue.submit(EditRequest(np.zeros((8, 8, 3), np.uint8), "a", "b", origin="cds-krita"))
    window.prompt.edit_button.click()
    window.prompt.edit_button.click()
    queue.play(app_job, EventKind.STARTED, message="tiny")
    queue.play(app_job, EventKind.PROGRESS, progress=ScriptedProgress(5, 20, (0, 0, 8, 8), count=2))
    qtbot.waitUntil(lambda: len(window.queue_panel.rows) == 4)
    qtbot.waitUntil(window.progress.preview_target.isVisible)
    qtbot.wait(50)  # layout settles
    progress = window.progress
    edit = window.prompt.edit_button
    for widget in (edit, progress.cancel, progress.cancel_all, progress.queue, progress.bar):
        assert fully_visible(widget), f"{widget.text() if hasattr(widget, 'text') else widget}"
    assert progress.queue.text() == "3 queued"
    rows = list(window.queue_panel.rows.values())
    viewport = window.queue_panel.scroll.viewport()
    for row in rows[: window.queue_panel.VISIBLE_ROWS]:
        assert fully_visible(row.cancel), f"Cancel of queue row {row.title.text()!r} is hidden"
        right = row.cancel.mapTo(viewport, row.cancel.rect().topRight()).x()
        assert right < viewport.width(), "the queue list's scroll bar covers a Cancel button"
    prompt, scroll = window.prompt, window.prompt_scroll
    assert prompt.width() <= scroll.viewport().width(), "the form is wider than its view"
    assert fully_visible(prompt.model)  # the top of the form is in view, the rest scrolls
    # a row's Cancel button cancels that job
    rows[1].cancel.click()
    assert queue.submitted[1].cancelled


# ----------------------------------------------------------------------------- model defaults
def test_guidance_left_empty_is_the_models_default_and_a_typed_one_wins(
    qtbot, make_window, circle_png, fast_values, model_loader
):
    """The Guidance field starts empty ("model default"): the edit runs with the loaded
    model's recommended guidance (5 here, as for SDXL), and the History shows and restores
    that value; a number typed into the field is used as given."""
    import dataclasses

    from cds_desktop.engine.jobs import JobQueue
    from cds_desktop.engine.settings import EditSettings

    def sdxl_like(spec, **kwargs):
        model = model_loader(spec, **kwargs)
        return dataclasses.replace(model, recommended={**model.recommended, "guidance_scale": 5})

    window = make_window(queue=JobQueue(loader=sdxl_like))
    guidance = window.prompt.guidance
    assert guidance.text() == "" and guidance.placeholderText() == "model default"
    window.open_path(circle_png)
    paint_stroke(window, [(14, 20), (34, 20)])
    window.prompt.set_values(fast_values())
    assert guidance.text() == "", "a saved 7.5 (the old number box's default) is the default"
    finished = run_and_wait(qtbot, window)
    assert finished[0].kind is EventKind.DONE, finished[0].error
    entry = window.history.entries[max(window.history.entries)]
    assert entry.settings["guidance_scale"] == 5
    assert "guidance 5" in window.history.list.item(0).text()
    guidance.setText("6")
    finished = run_and_wait(qtbot, window)
    assert finished[0].kind is EventKind.DONE, finished[0].error
    assert window.history.entries[max(window.history.entries)].settings["guidance_scale"] == 6
    window.restore_history(entry)  # the first edit's settings back: its guidance, 5
    assert guidance.text() == "5"
    assert EditSettings().guidance_scale == 7.5  # the plain default the model replaced
    guidance.setText("strong")
    assert window.start_edit() == []
    assert "guidance 'strong': expected a number" in window.progress.error.text()
