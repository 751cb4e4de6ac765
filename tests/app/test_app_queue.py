"""What the window shows about jobs: the shared queue (plug-in jobs too), several-target
edits, the empty-mask question and the checks made before anything is queued."""

from __future__ import annotations

import io
import threading

import numpy as np
from app_fakes import ScriptedProgress, ScriptedQueue, result_for
from PIL import Image
from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication, QMessageBox
from test_app_window import RUN_TIMEOUT, paint_stroke

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
