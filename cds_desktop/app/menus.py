"""The main window's menus: File, Edit, Mask, View, Plug-ins, Help.

Every action is kept as an attribute of the window (``window.actions[name]``): an action
only a local variable refers to is deleted by PyQt once the menu is built, and its menu
entry and shortcut vanish with it.
"""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QAction, QKeySequence

from . import help as help_menu
from .bridge import describe as describe_bridge

KEYS = QKeySequence.StandardKey
RUN_EDIT_KEYS = ("Ctrl+Return", "Ctrl+Enter")


def _action(window, menu, name: str, text: str, slot, shortcut=None, tip: str = "") -> QAction:
    action = QAction(text, window)
    if isinstance(shortcut, (list, tuple)):
        action.setShortcuts([QKeySequence(k) for k in shortcut])
    elif shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setStatusTip(tip)
    action.triggered.connect(slot)
    menu.addAction(action)
    window.actions[name] = action
    return action


def _keys(standard: QKeySequence.StandardKey, *common: str) -> list[QKeySequence]:
    """The platform's keys for ``standard`` first, then the ``common`` ones it lacks."""
    keys = list(QKeySequence.keyBindings(standard))
    for text in common:
        if QKeySequence(text) not in keys:
            keys.append(QKeySequence(text))
    return keys


def build(window) -> None:
    """Fill ``window.menuBar()``; the actions land in ``window.actions``."""
    window.actions = {}
    bar = window.menuBar()
    files = window.files
    file = bar.addMenu("&File")
    _action(window, file, "open", "&Open...", lambda: files.open_dialog(), KEYS.Open)
    window.recent_menu = file.addMenu("Open &Recent")
    window.recent_menu.aboutToShow.connect(lambda: files.fill_recent(window.recent_menu))
    file.addSeparator()
    _action(window, file, "save", "&Save", lambda: files.save(), KEYS.Save, "Save as OpenRaster")
    _action(window, file, "save_as", "Save &As...", lambda: files.save_as(), KEYS.SaveAs)
    _action(window, file, "export", "&Export PNG...", lambda: files.export(), "Ctrl+E", "Flattened")
    file.addSeparator()
    _action(window, file, "quit", "&Quit", window.close, KEYS.Quit)

    edit = bar.addMenu("&Edit")
    undo = window.state.undo
    window.undo_action = undo.createUndoAction(window, "&Undo")
    window.undo_action.setShortcuts(_keys(KEYS.Undo, "Ctrl+Z"))
    window.redo_action = undo.createRedoAction(window, "&Redo")
    window.redo_action.setShortcuts(_keys(KEYS.Redo, "Ctrl+Shift+Z", "Ctrl+Y"))
    window.actions.update(undo=window.undo_action, redo=window.redo_action)
    edit.addActions([window.undo_action, window.redo_action])
    edit.addSeparator()
    _action(
        window,
        edit,
        "run_edit",
        "Run &edit",
        window.start_edit,
        RUN_EDIT_KEYS,
        "Edit the active layer: one result layer per target prompt",
    )
    # Esc cancels only while the canvas has focus (in a text field it belongs to the field);
    # the menu entry shows the key without owning it
    _action(
        window,
        edit,
        "cancel",
        "&Cancel edit\tEsc",
        window.queue_view.cancel_running,
        None,
        "Stop the running job, the app's or a plug-in's (Esc on the canvas)",
    )
    canvas_cancel = QAction("Cancel edit", window.canvas)
    canvas_cancel.setShortcut(QKeySequence(Qt.Key.Key_Escape))
    canvas_cancel.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
    canvas_cancel.triggered.connect(window.queue_view.cancel_running)
    window.canvas.addAction(canvas_cancel)
    window.actions["cancel_on_canvas"] = canvas_cancel
    _action(window, edit, "cancel_all", "Cancel &all edits", window.queue_view.cancel_all)
    edit.addSeparator()
    _action(
        window, edit, "preferences", "&Preferences...", window.show_preferences, KEYS.Preferences
    )

    mask = bar.addMenu("&Mask")
    for op, text, key in (
        ("from_alpha", "From layer &alpha", None),
        ("invert", "&Invert", "Ctrl+I"),
        ("clear", "&Clear", "Ctrl+Shift+A"),
        ("feather", "&Feather", None),
    ):
        _action(
            window, mask, f"mask_{op}", text, lambda _=False, o=op: window.mask_operation(o), key
        )

    view = bar.addMenu("&View")
    canvas = window.canvas
    _action(window, view, "fit", "&Fit", canvas.fit, "Ctrl+0")
    _action(window, view, "actual_size", "&100 %", canvas.actual_size, "Ctrl+1")
    _action(window, view, "zoom_in", "Zoom &in", lambda: canvas.zoom_by(1.25), KEYS.ZoomIn)
    _action(window, view, "zoom_out", "Zoom &out", lambda: canvas.zoom_by(0.8), KEYS.ZoomOut)
    view.addSeparator()
    window.compare_action = _action(
        window, view, "compare", "&Compare before/after", window.on_compare, "C"
    )
    window.compare_action.setCheckable(True)
    view.addSeparator()
    for name, dock in (
        ("show_edit", window.edit_dock),
        ("show_layers", window.layers_dock),
        ("show_history", window.history_dock),
    ):
        toggle = dock.toggleViewAction()
        toggle.setText(f"{dock.windowTitle()} panel")
        view.addAction(toggle)
        window.actions[name] = toggle

    plugins = bar.addMenu("&Plug-ins")
    window.bridge_action = _action(
        window,
        plugins,
        "bridge",
        describe_bridge(None),
        window.on_bridge_toggled,
        None,
        "Serve Krita/GIMP plug-ins on this computer (loopback only), sharing the edit queue",
    )
    window.bridge_action.setCheckable(True)

    help_ = bar.addMenu("&Help")
    _action(
        window,
        help_,
        "guide",
        "User &guide",
        lambda: help_menu.show_guide(window),
        KEYS.HelpContents,
    )
    _action(
        window, help_, "shortcuts", "&Keyboard shortcuts", lambda: help_menu.show_shortcuts(window)
    )
    _action(
        window,
        help_,
        "demo_prompts",
        "What the &demo model understands",
        lambda: help_menu.show_demo_prompts(window),
    )
    help_.addSeparator()
    _action(window, help_, "about", "&About cds-desktop", lambda: help_menu.show_about(window))


DOCUMENT_ACTIONS = ("save", "save_as", "export", "fit", "actual_size", "zoom_in", "zoom_out")
LAYER_ACTIONS = ("mask_from_alpha", "mask_invert", "mask_clear", "mask_feather")


def connect_enabled(window) -> None:
    """Keep each action enabled exactly when it can do something."""
    actions = window.actions

    def sync(*_args) -> None:
        has_doc = window.state.doc is not None
        has_layer = window.state.active_layer is not None
        writing = window.files.busy
        for name in DOCUMENT_ACTIONS:  # no second write while one is running
            writes = name in ("save", "save_as", "export")
            actions[name].setEnabled(has_doc and not (writes and writing))
        for name in LAYER_ACTIONS:
            actions[name].setEnabled(has_layer)
        for button in window.mask_bar.operations.values():
            button.setEnabled(has_layer)

    def counts(*_args) -> None:  # every job in the shared queue, the plug-ins' too
        running, waiting = window.queue_view.counts()
        actions["cancel"].setEnabled(running > 0)
        actions["cancel_on_canvas"].setEnabled(running > 0)
        actions["cancel_all"].setEnabled(running + waiting > 0)

    state = window.state
    for signal in (state.documentReplaced, state.activeLayerChanged, state.layersChanged):
        signal.connect(sync)
    window.files.busyChanged.connect(sync)
    window.queue_view.changed.connect(counts)
    sync()
    counts()
