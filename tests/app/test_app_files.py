"""Files in the window: open checks first, Save/Export in the background, failures lose
nothing, permissions, and what a reopened .ora brings back."""

from __future__ import annotations

import errno
import os
import stat
import threading

import numpy as np
from test_app_menus import entry
from test_app_window import paint_stroke, run_and_wait

from cds_desktop.app.documents import Document, Layer, read_ora
from cds_desktop.engine.jobs import EventKind


def test_a_broken_file_is_refused_before_asking_about_unsaved_changes(window, circle_png, tmp_path):
    window.open_path(circle_png)
    paint_stroke(window, [(10, 10), (20, 10)])
    asked = []
    window.ask_unsaved = lambda: asked.append(1) or "discard"
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    assert not window.open_path(bad)
    assert asked == []  # nothing to decide: the file cannot be opened anyway
    assert "could not read" in window.progress.error.text()
    assert window.state.dirty and window.state.doc.title == "circle.png"
    assert window.open_path(circle_png) and asked == [1]


def _big_document(w: int = 1500, h: int = 1000, n: int = 3) -> Document:
    rng = np.random.default_rng(0)  # noise does not compress: the write takes a while
    layers = [Layer(f"layer {i}", rng.integers(0, 256, (h, w, 4), np.uint8)) for i in range(n)]
    return Document(w, h, layers)


def test_save_runs_in_the_background_and_the_document_stays_usable(qtbot, window, tmp_path):
    window.load_document(_big_document())
    window.state.rename_layer(window.state.active_uid, "changed")
    target = tmp_path / "big.ora"
    window.ask_save_path = lambda *_: str(target)
    finished = []
    window.files.writeFinished.connect(lambda *args: finished.append(args))
    main = threading.current_thread()
    writers = []
    original = window.files._write

    def spy(done, write, wait):
        return original(done, lambda: writers.append(threading.current_thread()) or write(), wait)

    window.files._write = spy
    save = entry(window, "File", "Save")
    save.trigger()  # File > Save, as the user does it
    assert window.files.busy and finished == []
    assert window.files.busy_bar.isVisible() and "saving big.ora" in window.files.busy_label.text()
    assert not save.isEnabled()  # no second write meanwhile
    window.state.set_visible(window.state.active_uid, False)  # the document is usable
    qtbot.waitUntil(lambda: bool(finished), timeout=60_000)
    assert writers and writers[0] is not main
    assert not window.files.busy_bar.isVisible() and save.isEnabled()
    back = read_ora(target)
    assert back.layers[-1].name == "changed" and back.layers[-1].visible  # the snapshot
    assert window.state.dirty  # the change made during the save is not in the file
    assert window.state.doc.path == target


def test_a_failed_save_loses_nothing(qtbot, window, circle_png, tmp_path, monkeypatch):
    window.open_path(circle_png)
    target = tmp_path / "doc.ora"
    assert window.save_as(target, wait=True)
    before = target.read_bytes()
    paint_stroke(window, [(10, 10), (30, 10)])

    def disk_full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    finished = []
    window.files.writeFinished.connect(lambda *args: finished.append(args))
    assert window.save()
    qtbot.waitUntil(lambda: bool(finished), timeout=60_000)
    assert "could not write" in window.progress.error.text()
    assert "No space left" in window.progress.error.text()
    assert target.read_bytes() == before  # the old file is intact
    assert window.state.dirty  # and the document still says it is not saved
    assert [p.name for p in tmp_path.glob(".doc.ora.*")] == []  # no temp file left


def test_saved_files_get_normal_permissions(window, circle_png, tmp_path):
    old = os.umask(0o022)
    try:
        window.open_path(circle_png)
        assert window.save_as(tmp_path / "a.ora", wait=True)
        assert window.export(tmp_path / "a.png", wait=True)
    finally:
        os.umask(old)
    for name in ("a.ora", "a.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_reopened_ora_keeps_masks_history_and_result_links(
    qtbot, make_window, circle_png, fast_values, tmp_path
):
    window = make_window()
    window.open_path(circle_png)
    paint_stroke(window, [(14, 20), (34, 20)])
    source = window.state.active_layer
    mask = source.mask.copy()
    window.prompt.set_values(fast_values())
    assert run_and_wait(qtbot, window)[0].kind is EventKind.DONE
    assert window.save_as(tmp_path / "work.ora", wait=True)

    again = make_window()
    assert again.open_path(tmp_path / "work.ora")
    layers = again.state.doc.layers
    assert [layer.name for layer in layers] == ["circle", "a blue circle (seed 0)"]
    assert np.array_equal(layers[0].mask, mask)  # the mask came back
    assert layers[1].source_uid == layers[0].uid  # so did the result -> source link
    entries = list(again.history.entries.values())
    assert [(e.target_prompt, e.layer_uid) for e in entries] == [("a blue circle", layers[1].uid)]
    assert entries[0].thumbnail is not None
    again.state.set_active(layers[1].uid)
    assert again.compare_action.isEnabled()  # compare works after reopening

    # the next edit of the source lands above its earlier result, with its own name
    again.state.set_active(layers[0].uid)
    again.prompt.set_values(fast_values())
    assert run_and_wait(qtbot, again)[0].kind is EventKind.DONE
    names = [layer.name for layer in again.state.doc.layers]
    assert names == ["circle", "a blue circle (seed 0)", "a blue circle (seed 0) #2"]
    assert len(again.history.entries) == 2 and max(again.history.entries) == 2


def test_a_mask_change_is_unsaved_work_and_is_saved(window, circle_png, tmp_path):
    window.open_path(circle_png)
    assert window.save_as(tmp_path / "m.ora", wait=True) and not window.state.dirty
    paint_stroke(window, [(10, 10), (20, 10)])
    assert window.state.dirty and window.windowTitle().startswith("m.ora[*]")
    assert window.save(wait=True) and not window.state.dirty
    assert read_ora(tmp_path / "m.ora").layers[0].mask[10, 15] == 255


def test_an_opacity_drag_during_a_save_keeps_the_document_unsaved(
    qtbot, window, circle_png, tmp_path
):
    """Consecutive opacity changes merge into one undo step (the index does not move): the
    save must still notice that the document changed after its snapshot."""
    window.open_path(circle_png)
    uid = window.state.active_uid
    window.state.set_opacity(uid, 0.9)
    finished = []
    window.files.writeFinished.connect(lambda *args: finished.append(args))
    index = window.state.undo.index()
    assert window.save_as(tmp_path / "o.ora")
    window.state.set_opacity(uid, 0.5)  # merges with the 0.9 step
    assert window.state.undo.index() == index
    qtbot.waitUntil(lambda: bool(finished), timeout=60_000)
    assert window.state.dirty
    assert read_ora(tmp_path / "o.ora").layers[0].opacity == 0.9
