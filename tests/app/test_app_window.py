"""The main window end to end on tiny-random: open, mask, edit, cancel, errors, save, prefs."""

from __future__ import annotations

import numpy as np
import pytest
from PyQt6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PyQt6.QtGui import QDropEvent
from PyQt6.QtTest import QTest

from cds_desktop.app import error_dialog
from cds_desktop.app.documents import read_ora
from cds_desktop.app.main_window import MainWindow
from cds_desktop.app.widgets.preferences import PreferencesDialog
from cds_desktop.engine.errors import ModelError
from cds_desktop.engine.jobs import EventKind, JobQueue

RUN_TIMEOUT = 60_000  # ms; generous, the machine is shared


def widget_pos(canvas, x: float, y: float) -> QPoint:
    p = canvas.pan + QPointF(x, y) * canvas.zoom
    return QPoint(round(p.x()), round(p.y()))


def paint_stroke(window, points, tool: str = "brush", size: int = 10) -> None:
    """A stroke through ``points`` with a brush ``size`` image pixels wide (the tool size is
    in screen pixels)."""
    window.tools.update(tool=tool, size=round(size * window.canvas.zoom), hardness=1.0)
    canvas = window.canvas
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, pos=widget_pos(canvas, *points[0]))
    for point in points[1:]:
        QTest.mouseMove(canvas, widget_pos(canvas, *point))
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=widget_pos(canvas, *points[-1]))


def run_and_wait(qtbot, window, n: int = 1):
    finished = []
    window.worker.finished.connect(lambda update, record: finished.append(update))
    ids = window.start_edit()
    assert len(ids) == n, window.progress.error.text()
    qtbot.waitUntil(lambda: len(finished) == n, timeout=RUN_TIMEOUT)
    return finished


def test_title_and_status_say_random_weights(window):
    assert "RANDOM WEIGHTS" in window.windowTitle()
    assert "RANDOM WEIGHTS" in window.model_label.text()


def test_demo_model_label(make_window):
    win = make_window(model="shapes-demo")
    assert "shapes-demo (demo model" in win.windowTitle()
    assert "RANDOM" not in win.windowTitle()


def test_open_mask_edit_adds_a_result_layer_and_keeps_the_source(
    qtbot, window, circle_png, fast_values
):
    assert window.open_path(circle_png)
    source = window.state.active_layer
    original = source.pixels.tobytes()
    paint_stroke(window, [(14, 20), (24, 20), (34, 20)])
    assert source.mask[20, 24] == 255 and source.mask[0, 0] == 0
    window.prompt.set_values(fast_values())
    previews = []
    window.worker.progressed.connect(lambda u: previews.append(window.canvas.has_preview))
    finished = run_and_wait(qtbot, window)
    assert finished[0].kind is EventKind.DONE, finished[0].error
    layers = window.state.doc.layers
    assert [layer.name for layer in layers] == ["circle", "a blue circle (seed 0)"]
    result = layers[1]
    assert result.source_uid == source.uid and window.state.active_uid == result.uid
    assert result.pixels.shape == source.pixels.shape
    assert source.pixels.tobytes() == original  # never modified
    assert not np.array_equal(result.pixels, source.pixels)
    assert previews and any(previews)  # the live preview was shown during the run
    assert not window.canvas.has_preview  # and removed at the end
    assert len(window.history.entries) == 1
    assert window.state.dirty
    # compare before/after is offered for a result layer
    assert window.compare_action.isEnabled()
    window.compare_action.trigger()
    assert window.canvas.compare_uid == result.uid
    # undo removes the result layer, redo brings it back
    window.state.undo.undo()
    assert [layer.name for layer in window.state.doc.layers] == ["circle"]
    window.state.undo.redo()
    assert window.state.doc.layers[1] is result


def test_edits_pressed_while_one_runs_queue_visibly_and_history_restores(
    qtbot, window, circle_png, fast_values
):
    window.open_path(circle_png)
    source = window.state.active_layer
    finished = []
    window.worker.finished.connect(lambda update, record: finished.append(update))
    texts = []
    window.queue_view.changed.connect(lambda: texts.append(window.progress.queue.text()))
    window.prompt.set_values(fast_values(targets="a blue circle", seed=5))
    assert len(window.start_edit()) == 1
    window.state.set_active(source.uid)  # the second edit is of the source too
    window.prompt.set_values(fast_values(targets="a green square", seed=5))
    assert len(window.start_edit()) == 1
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=RUN_TIMEOUT)
    assert [u.kind for u in finished] == [EventKind.DONE, EventKind.DONE]
    assert "1 queued" in texts
    names = [layer.name for layer in window.state.doc.layers]
    assert names[0] == "circle"
    # FIFO, and each result goes above the source's earlier results, so the newest shows
    assert names[1:] == ["a blue circle (seed 5)", "a green square (seed 5)"]
    window.compare_action.trigger()  # before = the source only, after = the newest result
    assert window.canvas._layers_to_paint() == [
        window.state.doc.layers[0],
        window.state.doc.layers[2],
    ]
    entry = next(e for e in window.history.entries.values() if e.target_prompt == "a green square")
    window.prompt.set_values(fast_values(targets="something else", seed=99, steps=7))
    window.history.list.itemClicked.emit(window.history.list.item(0))  # newest first
    window.restore_history(entry)
    assert window.prompt.target_prompts() == ["a green square"]
    assert window.prompt.seed.value() == 5 and window.prompt.steps.value() == 3
    assert window.state.active_uid == entry.layer_uid
    qtbot.waitUntil(lambda: window.progress.status.text().startswith("Ready"))
    assert not window.queue_panel.isVisible()


def test_cancel_mid_run(qtbot, window, circle_png, fast_values):
    window.open_path(circle_png)
    window.prompt.set_values(fast_values(steps=2000))
    finished = []
    window.worker.finished.connect(lambda update, record: finished.append(update))
    with qtbot.waitSignal(window.worker.progressed, timeout=RUN_TIMEOUT):
        window.start_edit()
    assert window.progress.cancel.isEnabled()
    window.progress.cancel.click()
    qtbot.waitUntil(lambda: bool(finished), timeout=RUN_TIMEOUT)
    assert finished[0].kind is EventKind.CANCELLED
    assert [layer.name for layer in window.state.doc.layers] == ["circle"]
    assert not window.worker.busy
    qtbot.waitUntil(lambda: not window.progress.cancel.isEnabled())


def test_model_error_is_shown_and_the_next_edit_works(
    qtbot, window, circle_png, fast_values, tmp_path
):
    window.open_path(circle_png)
    window.prompt.set_values(fast_values())
    window.prompt.set_model(str(tmp_path / "no-such-model"))
    finished = run_and_wait(qtbot, window)
    assert finished[0].kind is EventKind.FAILED
    banner = window.progress.error
    assert banner.isVisible() and "no-such-model" in banner.text()
    assert "Traceback" not in banner.text()
    assert len(window.state.doc.layers) == 1
    window.prompt.set_model("tiny-random")
    finished = run_and_wait(qtbot, window)
    assert finished[0].kind is EventKind.DONE and len(window.state.doc.layers) == 2
    assert not banner.isVisible()  # a new edit clears the old error


def test_bad_input_is_refused_before_queueing(window, circle_png, fast_values):
    assert window.start_edit() == []
    assert "open an image" in window.progress.error.text()
    window.open_path(circle_png)
    window.prompt.set_values(fast_values(w_cut="lots"))
    assert window.start_edit() == []
    assert "w_cut 'lots'" in window.progress.error.text()
    window.prompt.set_values(fast_values(working_size="8"))
    assert window.start_edit() == []
    assert "working_size=8" in window.progress.error.text()
    window.prompt.set_values(fast_values(targets="  "))
    assert window.start_edit() == []
    assert not window.worker.busy


def test_open_error_keeps_the_current_document(window, circle_png, tmp_path):
    window.open_path(circle_png)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    assert not window.open_path(bad)
    assert "could not read" in window.progress.error.text()
    assert window.state.doc.title == "circle.png"


def test_save_ora_never_overwrites_the_png(qtbot, window, circle_png, tmp_path):
    png_bytes = circle_png.read_bytes()
    window.open_path(circle_png)
    paint_stroke(window, [(10, 10), (20, 10)])
    asked = []
    window.ask_save_path = lambda suggestion, _filter: (
        asked.append(suggestion) or str(tmp_path / "saved")
    )
    assert window.save(wait=True)
    assert asked == [str(tmp_path / "circle.ora")]
    assert circle_png.read_bytes() == png_bytes
    saved = tmp_path / "saved.ora"
    doc = read_ora(saved)
    assert doc.layers[0].pixels.tobytes() == window.state.doc.layers[0].pixels.tobytes()
    assert not window.state.dirty and "saved.ora" in window.windowTitle()
    window.state.set_visible(window.state.active_uid, False)
    window.ask_save_path = lambda *a: pytest.fail("an .ora document saves in place")
    assert window.save(wait=True) and not read_ora(saved).layers[0].visible
    assert window.export(tmp_path / "flat.png", wait=True) and (tmp_path / "flat.png").is_file()


def test_unsaved_changes_prompt_on_close(window, circle_png):
    window.open_path(circle_png)
    paint_stroke(window, [(10, 10), (20, 10)])
    questions = []
    window.ask_unsaved = lambda: questions.append(1) or "cancel"
    window.close()
    assert questions and window.isVisible() and window.worker.queue is not None
    window.ask_unsaved = lambda: "discard"
    window.close()
    assert not window.isVisible()


def test_drop_opens_a_file(window, circle_png):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(circle_png))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)
    assert window.state.doc is not None and window.state.doc.title == "circle.png"
    assert window.prefs.recent_files[0].endswith("circle.png")


def test_strokes_and_layer_operations_undo_redo_through_the_window(window, circle_png):
    window.open_path(circle_png)
    layer = window.state.active_layer
    paint_stroke(window, [(5, 5), (40, 5)], size=6)
    painted = layer.mask.copy()
    paint_stroke(window, [(20, 5), (30, 5)], tool="eraser", size=6)
    assert painted[5, 25] == 255 and layer.mask[5, 25] == 0
    window.layers.delete.click()
    assert window.state.doc.layers == []
    stack = window.state.undo
    stack.undo()
    assert window.state.doc.layers == [layer]
    stack.undo()
    assert np.array_equal(layer.mask, painted)
    stack.undo()
    assert not layer.mask.any()
    stack.redo()
    stack.redo()
    assert layer.mask[5, 25] == 0 and layer.mask[5, 8] == 255


def test_preferences_and_last_values_persist(make_window, prefs, fast_values, circle_png):
    first = make_window()
    first.open_path(circle_png)
    first.prompt.set_values(fast_values(source="a cat", steps=17))
    first.tools.update(size=33)
    first.close()
    second = MainWindow(prefs)  # model from the preferences
    try:
        assert second.prompt.source.text() == "a cat"
        assert second.prompt.steps.value() == 17
        assert second.tools.size == 33
        assert second.prompt.model_spec == "tiny-random"
        assert str(circle_png.resolve()) in prefs.recent_files
    finally:
        second.close()
        second.shutdown()


def test_plugin_bridge_toggle_shares_the_edit_queue(qtbot, make_window, circle_png):
    import io

    from PIL import Image

    from plugin_bridge.client import BridgeClient

    token = "t" * 64
    window = make_window(bridge_options={"port": 0, "token": token, "host": "127.0.0.1"})
    assert "off" in window.bridge_action.text()
    window.bridge_action.trigger()
    qtbot.waitUntil(lambda: window.bridge.running and "127.0.0.1" in window.bridge_action.text())
    assert window.bridge.server.queue is window.worker.queue
    assert window.prefs.bridge_enabled
    png = io.BytesIO()
    Image.open(circle_png).save(png, format="PNG")
    client = BridgeClient(port=window.bridge.server.port, token=token, timeout=30)
    try:
        result = client.edit(
            png.getvalue(),
            "a red circle",
            "a blue circle",
            settings={"steps": 2, "working_size": 32},
        )
        assert Image.open(io.BytesIO(result.parts["image"])).size == (48, 40)
        qtbot.waitUntil(lambda: "1 client" in window.bridge_action.text())
    finally:
        client.close()
    window.bridge_action.trigger()
    qtbot.waitUntil(lambda: "off" in window.bridge_action.text())
    assert not window.bridge.running and not window.prefs.bridge_enabled


def test_bridge_start_failure_is_reported(qtbot, make_window):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        window = make_window(bridge_options={"port": port, "token": "t" * 64})
        window.bridge_action.trigger()
    assert not window.bridge_action.isChecked() and not window.bridge.running
    assert "bridge could not start" in window.progress.error.text()


def test_tool_keys_do_not_steal_typing(qtbot, window):
    window.tools.update(tool="eraser")
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)  # shortcuts only fire in the active window
    window.prompt.source.setFocus()
    qtbot.waitUntil(window.prompt.source.hasFocus)
    QTest.keyClicks(window.prompt.source, "bore")
    assert window.prompt.source.text() == "bore"
    assert window.tools.tool == "eraser"
    window.canvas.setFocus()
    qtbot.waitUntil(window.canvas.hasFocus)
    QTest.keyClick(window.canvas, Qt.Key.Key_B)  # a button shortcut "animates" its click
    qtbot.waitUntil(lambda: window.tools.tool == "brush")


@pytest.mark.parametrize(
    "problem",
    [
        "device='mps' was asked for, but this PyTorch build has no MPS backend",
        "dtype bf16 is not supported on mps: use fp16 or fp32",
    ],
    ids=["no-mps", "bf16-on-mps"],
)
def test_mps_is_offered_and_its_failure_is_one_line(
    qtbot, make_window, prefs, circle_png, fast_values, monkeypatch, problem
):
    """Preferences offer mps; the engine refusing it (faked here: no Mac in CI) ends as one
    line in the window's error banner: no traceback, no details dialog, no result layer."""
    asked = []

    def loader(spec, device="auto", **kwargs):
        asked.append(device)
        raise ModelError(problem)

    def choose_mps(dialog) -> bool:
        items = [dialog.device.itemText(i) for i in range(dialog.device.count())]
        assert items == ["auto", "cpu", "cuda", "mps"]
        dialog.device.setCurrentText("mps")
        dialog.accept()
        return True

    dialogs = []
    monkeypatch.setattr(PreferencesDialog, "exec", choose_mps)
    monkeypatch.setattr(error_dialog, "show", lambda window, message: dialogs.append(message))
    window = make_window(queue=JobQueue(loader=loader))
    window.show_preferences()
    assert prefs.device == "mps" and window.device_label.text() == "device: mps"
    window.open_path(circle_png)
    window.prompt.set_values(fast_values())
    finished = run_and_wait(qtbot, window)
    assert finished[0].kind is EventKind.FAILED and asked == ["mps"]
    banner = window.progress.error.text()
    assert banner == f"model error: {problem}", banner
    assert dialogs == [] and len(window.state.doc.layers) == 1
