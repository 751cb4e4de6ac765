"""The main window: canvas in the middle, prompt/progress, layers and history docks.

Edits are run by :class:`editing.EditController` (requests, previews, result layers, history);
the window wires it to the canvas and the panels. The queue panel shows every job in the shared
JobQueue, the plug-ins' too (:class:`queue_view.QueueModel`). All engine events arrive as
queued signals, so the window stays responsive.
Opening, saving, exporting, recent files and drops are in files.py; the menus in menus.py;
Help and the first-run hint in help.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PyQt6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSlider,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from cds_desktop import logs
from cds_desktop.engine.errors import EditError
from cds_desktop.engine.jobs import JobQueue

from . import error_dialog, menus, model_choice
from .bridge import BridgeControl
from .bridge import describe as describe_bridge
from .documents import Document, Layer
from .editing import EditController
from .files import FileActions
from .help import add_first_run_hint
from .queue_view import QueueModel
from .settings import Preferences
from .state import DocumentState
from .widgets.canvas import Canvas
from .widgets.history import HistoryEntry, HistoryPanel
from .widgets.layers import LayersPanel
from .widgets.mask_tools import MaskToolbar, ToolSettings
from .widgets.preferences import PreferencesDialog
from .widgets.progress import ProgressPanel
from .widgets.prompt_panel import PromptPanel
from .widgets.queue_panel import QueuePanel

log = logging.getLogger(__name__)

APP_NAME = "cds-desktop"


class MainWindow(QMainWindow):
    def __init__(
        self,
        prefs: Preferences,
        model: str | None = None,
        queue: JobQueue | None = None,
        persist: bool = True,
        bridge_options: dict | None = None,
    ) -> None:
        super().__init__()
        self.prefs, self.persist = prefs, persist
        self.state = DocumentState(self)
        self.tools = ToolSettings(self)
        self.tools.load(prefs.tool_values())
        self.editor = EditController(self.state, queue, self, self._engine_options)
        self.editor.ask_whole_layer = self._ask_whole_layer
        self.worker = self.editor.worker
        self.queue_view = QueueModel(self.worker.queue, self)
        self.bridge = BridgeControl(self.worker.queue, bridge_options, self)
        self._closed = False
        # questions are attributes so tests (and the screenshot mode) can answer them
        self.ask_unsaved: Callable[[], str] = self._ask_unsaved
        self.ask_save_path: Callable[[str, str], str | None] = self._ask_save_path
        self._build_widgets()
        self.files = FileActions(self)
        menus.build(self)
        self._build_toolbars()
        self._build_status_bar()
        self._connect()
        self.prompt.set_values(prefs.panel_values())
        self.prompt.set_model(model or prefs.model)
        self._on_active_layer(0)
        menus.connect_enabled(self)
        add_first_run_hint(self)
        self.resize(1280, 800)
        self.resizeDocks([self.edit_dock, self.layers_dock], [560, 180], Qt.Orientation.Vertical)
        if persist and prefs.geometry() is not None:
            self.restoreGeometry(prefs.geometry())
            self.restoreState(prefs.window_state() or b"")
        self.update_title()
        if persist and prefs.bridge_enabled:
            self.bridge_action.setChecked(True)

    # ------------------------------------------------------------------ construction
    def _build_widgets(self) -> None:
        self.canvas = Canvas(self.state, self.tools, self)
        self.setCentralWidget(self.canvas)
        self.mask_bar = MaskToolbar(self.tools, self)
        self.prompt = PromptPanel(self.prefs.custom_models, self)
        self.progress = ProgressPanel(self)
        self.queue_panel = QueuePanel(self)
        self.layers = LayersPanel(self.state, self)
        self.history = HistoryPanel(self)
        edit = QWidget(self)
        column = QVBoxLayout(edit)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.prompt)
        column.addWidget(self.progress)
        column.addWidget(self.queue_panel)
        column.addStretch(1)
        scroll = QScrollArea(self)  # small screens: the panel scrolls instead of clipping
        scroll.setWidget(edit)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(edit.sizeHint().width())
        self.edit_dock = self._dock("Edit", scroll, "edit")
        self.layers_dock = self._dock("Layers", self.layers, "layers")
        self.history_dock = self._dock("History", self.history, "history")
        self.tabifyDockWidget(self.layers_dock, self.history_dock)
        self.layers_dock.raise_()

    def _dock(self, title: str, widget: QWidget, name: str) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{name}")
        dock.setWidget(widget)
        dock.setFeatures(  # closable: View has each panel's toggle to bring it back
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        return dock

    def _build_toolbars(self) -> None:
        self.addToolBar(self.mask_bar)
        view = QToolBar("View", self)
        view.setObjectName("toolbar-view")
        view.addAction(self.actions["fit"])  # the View menu's actions: one enabled state
        view.addAction(self.actions["actual_size"])
        view.addSeparator()
        view.addAction(self.compare_action)
        self.split = QSlider(Qt.Orientation.Horizontal, self)
        self.split.setRange(0, 100)
        self.split.setValue(50)
        self.split.setFixedWidth(120)
        self.split.setToolTip("Compare split: before (left) / after (right)")
        self.split.valueChanged.connect(lambda v: self.canvas.set_split(v / 100))
        self.canvas.splitChanged.connect(self._on_split_dragged)
        view.addWidget(self.split)
        self.addToolBar(Qt.ToolBarArea.BottomToolBarArea, view)

    def _on_split_dragged(self, fraction: float) -> None:
        self.split.blockSignals(True)
        self.split.setValue(round(fraction * 100))
        self.split.blockSignals(False)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.model_label = QLabel(self)
        self.device_label = QLabel(self)
        self.zoom_label = QLabel("100 %", self)
        self.pos_label = QLabel("", self)
        self.bridge_button = QToolButton(self)
        self.bridge_button.setDefaultAction(self.bridge_action)
        self.bridge_button.setAutoRaise(True)
        for w in (
            self.pos_label,
            self.zoom_label,
            self.bridge_button,
            self.device_label,
            self.model_label,
        ):
            bar.addPermanentWidget(w)

    def _connect(self) -> None:
        s = self.state
        s.undo.cleanChanged.connect(self.update_title)
        s.documentReplaced.connect(self.update_title)
        s.activeLayerChanged.connect(self._on_active_layer)
        self.mask_bar.maskOperation.connect(lambda op, _r: self.mask_operation(op))
        self.prompt.editRequested.connect(self.start_edit)
        self.prompt.modelChanged.connect(self._on_model_changed)
        q, e = self.queue_view, self.editor
        self.progress.cancelRequested.connect(q.cancel_running)
        self.progress.cancelAllRequested.connect(q.cancel_all)
        self.progress.previewTargetChanged.connect(e.set_preview_index)
        self.queue_panel.cancelRequested.connect(q.cancel)
        q.changed.connect(self._on_queue_changed)
        self.history.restoreRequested.connect(self.restore_history)
        self.canvas.zoomChanged.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        self.canvas.cursorMoved.connect(
            lambda x, y: self.pos_label.setText(f"{x}, {y}" if x >= 0 else "")
        )
        e.error.connect(self.show_error)
        e.status.connect(lambda message: self.statusBar().showMessage(message, 8000))
        e.previewChanged.connect(self.canvas.set_preview)
        e.previewCleared.connect(self.canvas.clear_preview)
        e.targetsChanged.connect(self.progress.set_preview_targets)
        e.historyAdded.connect(self.history.add)
        e.deviceChanged.connect(lambda device: self.device_label.setText(f"device: {device}"))
        self.bridge.statusChanged.connect(self._on_bridge_status)

    # ------------------------------------------------------------------ title / model
    @property
    def model_label_text(self) -> str:
        return model_choice.label(self.prompt.model_spec)

    @property
    def is_closed(self) -> bool:
        return self._closed

    def update_title(self, *_args) -> None:
        if self._closed:
            return
        doc = self.state.doc
        name = doc.title if doc else "no image"
        self.setWindowTitle(f"{name}[*] - {APP_NAME} - {self.model_label_text}")
        self.setWindowModified(self.state.dirty)

    def _on_model_changed(self, spec: str) -> None:
        random_weights = model_choice.is_random(spec)
        self.model_label.setText(f"model: {self.model_label_text}")
        self.model_label.setStyleSheet(
            "QLabel { background: #a01010; color: white; font-weight: bold; padding: 0 4px; }"
            if random_weights
            else ""
        )
        self.device_label.setText(f"device: {self.prefs.device}")
        self.bridge.configure(spec, self.prefs.device, self.prefs.vae_backend)
        self.update_title()

    def show_preferences(self) -> None:
        if PreferencesDialog(self.prefs, self).exec():
            self.device_label.setText(f"device: {self.prefs.device}")
            self.bridge.configure(self.prompt.model_spec, self.prefs.device, self.prefs.vae_backend)

    # ------------------------------------------------------------------ plug-in bridge
    def on_bridge_toggled(self, on: bool) -> None:
        if on:
            error = self.bridge.start(
                self.prompt.model_spec, self.prefs.device, self.prefs.vae_backend
            )
            if error:
                self.show_error(error)
                self.bridge_action.setChecked(False)
                return
        else:
            self.bridge.stop()
        if self.persist:
            self.prefs.bridge_enabled = on

    def _on_bridge_status(self, status) -> None:
        if self._closed:
            return
        self.bridge_action.setText(describe_bridge(status))
        running = bool(status and status.running)
        if self.bridge_action.isChecked() != running:
            self.bridge_action.blockSignals(True)
            self.bridge_action.setChecked(running)
            self.bridge_action.blockSignals(False)
        if status is not None and status.token_file:
            self.bridge_action.setToolTip(
                f"plug-ins read the access token from {status.token_file}"
            )

    # ------------------------------------------------------------------ documents (files.py)
    def open_path(self, path: str | Path) -> bool:
        return self.files.open_path(path)

    def save(self, wait: bool = False) -> bool:
        return self.files.save(wait=wait)

    def save_as(self, path: str | Path | None = None, wait: bool = False) -> bool:
        return self.files.save_as(path, wait=wait)

    def export(self, path: str | Path | None = None, wait: bool = False) -> bool:
        return self.files.export(path, wait=wait)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        self.files.drag_enter(event)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        self.files.drop(event)

    def load_document(self, doc: Document) -> None:
        self.history.clear()
        self.compare_action.setChecked(False)
        self.progress.clear_error()
        self.state.set_document(doc)

    def _ask_save_path(self, suggestion: str, file_filter: str) -> str | None:
        path, _ = QFileDialog.getSaveFileName(self, "Save", suggestion, file_filter)
        return path or None

    # ------------------------------------------------------------------ masks / compare
    def mask_operation(self, op: str) -> None:
        if not self.state.mask_operation(op, float(self.tools.feather_radius)):
            self.statusBar().showMessage("no active layer", 3000)

    def _on_active_layer(self, _uid: int) -> None:
        layer = self.state.active_layer
        is_result = layer is not None and layer.source_uid is not None
        self.compare_action.setEnabled(is_result)
        if not is_result and self.compare_action.isChecked():
            self.compare_action.setChecked(False)
        self.on_compare()

    def on_compare(self) -> None:
        on = self.compare_action.isChecked() and self.compare_action.isEnabled()
        self.canvas.set_compare(self.state.active_uid if on else None)
        self.split.setEnabled(on)

    # ------------------------------------------------------------------ editing
    def start_edit(self) -> list[int]:
        """Queue one edit of the active layer (one result layer per target prompt); returns
        the queued job's id in a list, empty when the edit was refused before queueing."""
        self.progress.clear_error()
        try:
            inputs = self.prompt.snapshot()
        except EditError as exc:
            self.show_error(str(exc))
            return []
        job_id = self.editor.start(inputs)
        if job_id is None:
            return []
        self._save_values()
        return [job_id]

    @property
    def device_in_use(self) -> str:
        return self.editor.device_in_use

    def _engine_options(self) -> dict:
        return {"device": self.prefs.device, "vae_backend": self.prefs.vae_backend}

    def _ask_whole_layer(self, layer: Layer) -> bool:
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Empty mask")
        box.setText(f"The mask of \u201c{layer.name}\u201d is empty.")
        box.setInformativeText(
            "Edit the whole layer? To edit only part of it, cancel and paint the area on the "
            "mask first (Brush, Rect or Ellipse)."
        )
        whole = box.addButton("Edit whole layer", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is whole

    def _on_queue_changed(self) -> None:
        if self._closed:
            return
        q = self.queue_view
        self.queue_panel.set_entries(list(q.entries.values()))
        running, waiting = q.counts()
        self.progress.set_counts(running, waiting)
        self.progress.show_job(q.running(), waiting, q.last_message)

    def restore_history(self, entry: HistoryEntry) -> None:
        self.prompt.apply_edit(entry.source_prompt, entry.target_prompt, entry.settings)
        if entry.layer_uid is not None:
            self.state.set_active(entry.layer_uid)
        self.statusBar().showMessage("settings restored from the history", 4000)

    def show_error(self, message: str) -> None:
        message = logs.name_log(message)  # "details are in the log (<which file>)"
        log.info("shown to the user: %s", message)
        self.progress.show_error(message)
        self.statusBar().showMessage(message, 10000)
        if logs.LOG_MARK in message:  # unexpected: a dialog with "Show Details..."
            error_dialog.show(self, message)

    # ------------------------------------------------------------------ closing
    def _ask_unsaved(self) -> str:
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self,
            "Unsaved changes",
            f"Save the changes to {self.state.doc.title}?",
            buttons.Save | buttons.Discard | buttons.Cancel,
            buttons.Save,
        )
        return {buttons.Save: "save", buttons.Discard: "discard"}.get(answer, "cancel")

    def confirm_discard(self) -> bool:
        """True when the current document may be replaced or closed."""
        if not self.state.dirty:
            return True
        answer = self.ask_unsaved()
        if answer == "save":
            return self.save(wait=True)
        return answer == "discard"

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        if not self._closed and not self.confirm_discard():
            event.ignore()
            return
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Stop the worker thread and persist preferences (idempotent)."""
        if self._closed:
            return
        self.files.wait()  # a save still being written finishes first
        self._closed = True
        self.state.blockSignals(True)  # no more updates into a closing window
        self.state.undo.blockSignals(True)
        self._save_values()
        if self.persist:
            self.prefs.set_window(self.saveGeometry(), self.saveState())
        self.prefs.sync()
        self.queue_view.close()
        self.bridge.stop()
        self.editor.shutdown()

    def _save_values(self) -> None:
        if not self.persist:
            return
        self.prefs.set_panel_values(self.prompt.values())
        self.prefs.set_tool_values(self.tools.to_dict())
        self.prefs.model = self.prompt.model_spec
        for spec in reversed(self.prompt.custom_models):
            self.prefs.add_custom_model(spec)
