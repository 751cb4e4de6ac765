"""The menus a user sees: every entry reachable and enabled when it can act, Undo/Redo and
the shortcuts pressed as keys, panel toggles, Esc and tool keys vs typing, Help, the log."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtTest import QTest
from PyQt6.QtWidgets import QToolBar
from test_app_window import paint_stroke

from cds_desktop import logs
from cds_desktop.app import help as help_module

CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier


def menu(window, title: str):
    for action in window.menuBar().actions():
        if action.text().replace("&", "") == title:
            return action.menu()
    raise AssertionError(f"no {title!r} menu in the menu bar")


def entry(window, title: str, text: str):
    """The menu entry whose label (without & and the key column) starts with ``text``."""
    for action in menu(window, title).actions():
        if action.text().replace("&", "").split("\t")[0].startswith(text):
            return action
    labels = [a.text() for a in menu(window, title).actions() if not a.isSeparator()]
    raise AssertionError(f"no {text!r} in the {title} menu: {labels}")


def active(qtbot, window, widget=None):
    """Shortcuts fire only in the active window, for the focused widget."""
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    widget = widget or window.canvas
    widget.setFocus()
    qtbot.waitUntil(widget.hasFocus)
    return widget


# what every entry of every menu is, and whether it is enabled without / with an image
ENTRIES = {
    "File": {
        "Open...": (True, True),
        "Open Recent": (True, True),
        "Save": (False, True),
        "Save As...": (False, True),
        "Export PNG...": (False, True),
        "Quit": (True, True),
    },
    "Edit": {
        "Undo": (False, False),  # nothing to undo yet
        "Redo": (False, False),
        "Run edit": (True, True),  # without an image it says how to open one
        "Cancel edit": (False, False),  # nothing running
        "Cancel all edits": (False, False),
        "Preferences...": (True, True),
    },
    "Mask": {
        "From layer alpha": (False, True),
        "Invert": (False, True),
        "Clear": (False, True),
        "Feather": (False, True),
    },
    "View": {
        "Fit": (False, True),
        "100 %": (False, True),
        "Zoom in": (False, True),
        "Zoom out": (False, True),
        "Compare before/after": (False, False),  # only for a result layer
        "Edit panel": (True, True),
        "Layers panel": (True, True),
        "History panel": (True, True),
    },
    "Plug-ins": {"Plug-in bridge": (True, True)},
    "Help": {
        "User guide": (True, True),
        "Keyboard shortcuts": (True, True),
        "What the demo model understands": (True, True),
        "About cds-desktop": (True, True),
    },
}


def test_every_menu_entry_is_listed_and_enabled_when_it_can_act(window, circle_png):
    titles = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert titles == list(ENTRIES)
    for title, expected in ENTRIES.items():
        labels = [
            a.text().replace("&", "").split("\t")[0]
            for a in menu(window, title).actions()
            if not a.isSeparator()
        ]
        assert len(labels) == len(expected), f"{title} menu: {labels}"
        for text, (without, _) in expected.items():
            action = entry(window, title, text)
            assert action.isVisible()
            assert action.isEnabled() == without, f"{title} > {text} without an image"
    assert window.open_path(circle_png)
    for title, expected in ENTRIES.items():
        for text, (_, with_image) in expected.items():
            action = entry(window, title, text)
            assert action.isEnabled() == with_image, f"{title} > {text} with an image"


def test_undo_and_redo_from_the_edit_menu_and_with_the_keys(qtbot, window, circle_png):
    window.open_path(circle_png)
    layer = window.state.active_layer
    undo, redo = entry(window, "Edit", "Undo"), entry(window, "Edit", "Redo")
    assert "Ctrl+Z" in {k.toString() for k in undo.shortcuts()}
    assert {k.toString() for k in redo.shortcuts()} >= {"Ctrl+Shift+Z", "Ctrl+Y"}
    paint_stroke(window, [(5, 5), (40, 5)], size=6)
    painted = layer.mask.copy()
    assert undo.isEnabled() and "Brush stroke" in undo.text()
    window.layers.delete.click()  # a layer operation from the Layers panel
    assert window.state.doc.layers == [] and "Delete layer" in undo.text()

    undo.trigger()  # the menu entry
    assert window.state.doc.layers == [layer]
    canvas = active(qtbot, window)
    QTest.keyClick(canvas, Qt.Key.Key_Z, CTRL)  # Ctrl+Z
    assert not layer.mask.any()
    assert not undo.isEnabled() and redo.isEnabled()
    QTest.keyClick(canvas, Qt.Key.Key_Z, CTRL | SHIFT)  # Ctrl+Shift+Z
    assert np.array_equal(layer.mask, painted)
    QTest.keyClick(canvas, Qt.Key.Key_Y, CTRL)  # Ctrl+Y
    assert window.state.doc.layers == []
    assert not redo.isEnabled()
    undo.trigger()
    window.state.set_opacity(layer.uid, 0.5)  # properties undo too
    window.state.rename_layer(layer.uid, "renamed")
    QTest.keyClick(canvas, Qt.Key.Key_Z, CTRL)
    QTest.keyClick(canvas, Qt.Key.Key_Z, CTRL)
    assert (layer.name, layer.opacity) == ("circle", 1.0)


def test_view_menu_hides_and_shows_the_panels(qtbot, window):
    for name, dock in (
        ("Edit panel", window.edit_dock),
        ("Layers panel", window.layers_dock),
        ("History panel", window.history_dock),
    ):
        toggle = entry(window, "View", name)
        assert toggle.isEnabled() and toggle.isCheckable()
        toggle.trigger()
        qtbot.waitUntil(lambda d=dock: d.isHidden())
        assert not toggle.isChecked()
        toggle.trigger()
        qtbot.waitUntil(lambda d=dock: not d.isHidden())


def test_run_edit_shows_its_shortcut_and_the_key_runs_it(qtbot, window, circle_png, fast_values):
    run = entry(window, "Edit", "Run edit")
    assert run.shortcut().toString() == "Ctrl+Return"
    started = []
    window.worker.countsChanged.connect(lambda r, w: started.append(r + w))
    active(qtbot, window, window.prompt.targets)
    QTest.keyClick(window.prompt.targets, Qt.Key.Key_Return, CTRL)  # without an image
    assert "open an image" in window.progress.error.text()
    window.open_path(circle_png)
    window.prompt.set_values(fast_values(steps=2000))
    active(qtbot, window, window.prompt.targets)
    QTest.keyClick(window.prompt.targets, Qt.Key.Key_Return, CTRL)
    qtbot.waitUntil(lambda: window.worker.busy)
    assert window.prompt.target_prompts() == ["a blue circle"]  # no newline typed
    window.worker.cancel_all()
    qtbot.waitUntil(lambda: not window.worker.busy, timeout=60_000)


def test_esc_cancels_only_when_the_canvas_has_focus(qtbot, window, circle_png, fast_values):
    window.open_path(circle_png)
    window.prompt.set_values(fast_values(steps=2000))
    cancelled = []
    window.worker.finished.connect(lambda update, record: cancelled.append(update.kind.value))
    with qtbot.waitSignal(window.worker.progressed, timeout=60_000):
        window.start_edit()
    assert entry(window, "Edit", "Cancel edit").isEnabled()
    assert entry(window, "Edit", "Cancel edit").text().endswith("\tEsc")
    field = active(qtbot, window, window.prompt.source)
    QTest.keyClick(field, Qt.Key.Key_Escape)  # in a text field: not a cancel
    with qtbot.waitSignal(window.worker.progressed, timeout=60_000):
        pass
    assert cancelled == [] and window.worker.busy
    QTest.keyClick(active(qtbot, window), Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: cancelled == ["cancelled"], timeout=60_000)


@pytest.mark.parametrize("field", ["source", "targets", "w_cut", "working_size"])
def test_tool_and_view_keys_never_steal_typing(qtbot, window, circle_png, field):
    window.open_path(circle_png)
    window.tools.update(tool="eraser")
    widget = active(qtbot, window, getattr(window.prompt, field))
    QTest.keyClicks(widget, "bercho")  # brush, eraser, rect, compare, pan, ellipse keys
    text = widget.toPlainText() if field == "targets" else widget.text()
    assert text.endswith("bercho")
    assert window.tools.tool == "eraser" and not window.compare_action.isChecked()


def test_help_menu(qtbot, window):
    entry(window, "Help", "What the demo model understands").trigger()
    demo = window.help_dialogs["demo"]
    assert demo.isVisible()
    text = demo.browser.toPlainText()
    for word in ("red", "green", "blue", "yellow", "circle", "square", "triangle"):
        assert word in text
    assert "a yellow triangle" in text

    entry(window, "Help", "Keyboard shortcuts").trigger()
    shortcuts = window.help_dialogs["shortcuts"].browser.toPlainText()
    for line in ("Undo", "Ctrl+Z", "Run edit", "Ctrl+Return", "Esc (canvas)", "Brush tool"):
        assert line in shortcuts

    entry(window, "Help", "User guide").trigger()
    guide = window.help_dialogs["guide"].browser.toPlainText()
    assert "Open an image" in guide and "Save and export" in guide

    entry(window, "Help", "About").trigger()
    about = window.help_dialogs["about"].browser.toPlainText()
    assert help_module.version() in about
    assert "RANDOM WEIGHTS" in about  # the model in use
    assert f"Device: {window.prefs.device}" in about


def test_first_run_hint_until_dismissed(make_window, prefs):
    first = make_window()
    hint = first.first_run_hint
    assert hint is not None and hint.isVisible()
    hint.dismiss.click()
    assert first.first_run_hint is None and prefs.hint_dismissed
    assert make_window().first_run_hint is None  # remembered


def test_internal_errors_name_the_log_file_and_offer_details(qtbot, window, tmp_path):
    path = logs.setup_file_logging(tmp_path / "logs")
    try:
        try:
            raise RuntimeError("Output size is too small")
        except RuntimeError:
            logging.getLogger("cds_desktop.engine.jobs").exception("edit failed")
        window.show_error("edit failed: internal error (RuntimeError); details are in the log")
        banner = window.progress.error.text()
        assert str(path) in banner
        box = window.error_dialog
        assert box.isVisible() and str(path) in box.text()
        details = box.detailedText()  # from the problem's ERROR record on
        assert details.splitlines()[0].endswith(
            "ERROR MainThread cds_desktop.engine.jobs: edit failed"
        )
        assert "Traceback" in details and "Output size is too small" in details
        assert any("Show Details" in b.text() for b in box.buttons())
    finally:
        logs.stop_file_logging()
    window.show_error("edit failed: something the user can fix")  # no dialog for those
    assert "something the user can fix" not in window.error_dialog.text()


def test_toolbar_and_panel_buttons_are_enabled_when_they_can_act(window, circle_png):
    def state():
        bar, layers, progress = window.mask_bar, window.layers, window.progress
        return {
            **{f"mask {op}": b.isEnabled() for op, b in bar.operations.items()},
            **{f"tool {name}": b.isEnabled() for name, b in bar.buttons.items()},
            "layers up": layers.up.isEnabled(),
            "layers delete": layers.delete.isEnabled(),
            "layers opacity": layers.opacity.isEnabled(),
            "edit button": window.prompt.edit_button.isEnabled(),
            "cancel": progress.cancel.isEnabled(),
            "cancel all": progress.cancel_all.isEnabled(),
        }

    without = state()
    assert not any(without[k] for k in without if k.startswith(("mask", "layers", "cancel")))
    assert all(without[k] for k in without if k.startswith("tool")) and without["edit button"]
    fit = [b for b in window.findChildren(QToolBar) if window.actions["fit"] in b.actions()]
    assert fit and not window.actions["fit"].isEnabled()  # the bottom bar's Fit is the menu's
    window.open_path(circle_png)
    with_image = state()
    assert all(with_image[k] for k in with_image if k.startswith(("mask", "layers", "tool")))
    assert not with_image["cancel"] and not with_image["cancel all"]  # nothing running
    window.mask_bar.operations["invert"].click()
    assert window.state.active_layer.mask.all()
