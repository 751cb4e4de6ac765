"""The main window: canvas in the middle, prompt/progress, layers and history docks.

Edits: the active layer's pixels and mask go to the shared JobQueue (via EditWorker) as one job
per target prompt; every result becomes a new layer right above its source, which is never
modified. All engine events arrive as queued signals, so the window stays responsive.
Opening, saving, exporting, recent files and drops are in files.py; the menus in menus.py;
Help and the first-run hint in help.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PyQt6.QtCore import QRectF, Qt
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
from cds_desktop.engine.jobs import EditRequest, EventKind, FailureKind, JobQueue

from . import error_dialog, menus, model_choice
from .bridge import BridgeControl
from .bridge import describe as describe_bridge
from .documents import Document, Layer
from .files import FileActions
from .help import add_first_run_hint
from .settings import Preferences
from .state import DocumentState
from .widgets.canvas import Canvas
from .widgets.history import HistoryEntry, HistoryPanel
from .widgets.layers import LayersPanel
from .widgets.mask_tools import MaskToolbar, ToolSettings
from .widgets.preferences import PreferencesDialog
from .widgets.progress import ProgressPanel
from .widgets.prompt_panel import PromptPanel
from .worker import EditWorker, JobRecord, Update

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
        self.worker = EditWorker(queue, self)
        self.bridge = BridgeControl(self.worker.queue, bridge_options, self)
        self._history_ids = 0
        self._closed = False
        self.device_in_use = ""
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
        self.layers = LayersPanel(self.state, self)
        self.history = HistoryPanel(self)
        edit = QWidget(self)
        column = QVBoxLayout(edit)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.prompt)
        column.addWidget(self.progress)
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
        s, w = self.state, self.worker
        s.undo.cleanChanged.connect(self.update_title)
        s.documentReplaced.connect(self.update_title)
        s.activeLayerChanged.connect(self._on_active_layer)
        self.mask_bar.maskOperation.connect(lambda op, _r: self.mask_operation(op))
        self.prompt.editRequested.connect(self.start_edit)
        self.prompt.modelChanged.connect(self._on_model_changed)
        self.progress.cancelRequested.connect(w.cancel_current)
        self.progress.cancelAllRequested.connect(w.cancel_all)
        self.history.restoreRequested.connect(self.restore_history)
        self.canvas.zoomChanged.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        self.canvas.cursorMoved.connect(
            lambda x, y: self.pos_label.setText(f"{x}, {y}" if x >= 0 else "")
        )
        w.loading.connect(lambda _id, msg: self.progress.show_loading(msg))
        w.started.connect(self._on_started)
        w.progressed.connect(self._on_progress)
        w.finished.connect(self._on_finished)
        w.countsChanged.connect(self.progress.set_counts)
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
        """Queue one job per target prompt on the active layer; returns the job ids."""
        self.progress.clear_error()
        layer = self.state.active_layer
        if layer is None:
            self.show_error("open an image first (File > Open or drop a file on the window)")
            return []
        targets = self.prompt.target_prompts()
        try:
            if not targets:
                raise EditError("the target prompt is empty: describe what the image should become")
            settings = self.prompt.build_settings(self.prompt.next_seed())
        except EditError as exc:
            self.show_error(str(exc))
            return []
        mask = layer.mask.copy() if layer.has_mask else None
        image = layer.pixels.copy()
        ids = []
        for target in targets:
            request = EditRequest(
                image=image,
                source_prompt=self.prompt.source_prompt(),
                target_prompt=target,
                mask=mask,
                settings=settings,
                model=self.prompt.model_spec,
                device=self.prefs.device,
                vae_backend=self.prefs.vae_backend,
                tag=(self.state.doc.uid, layer.uid),
            )
            ids.append(self.worker.submit(request))
        self._save_values()
        return ids

    def _on_started(self, job_id: int, label: str, device: str) -> None:
        record = self.worker.record(job_id)
        target = record.request.target_prompt if record else ""
        self.device_in_use = device
        if device:
            self.device_label.setText(f"device: {device}")
        self.progress.show_started(f"editing: {target}")

    def _on_progress(self, update: Update) -> None:
        self.progress.show_step(update.step, update.total, update.elapsed)
        record = self.worker.record(update.job_id)
        if update.preview is None or record is None or update.box is None:
            return
        doc_uid, layer_uid = record.request.tag
        layer = self.state.doc.layer(layer_uid) if self.state.doc else None
        if layer is None or self.state.doc.uid != doc_uid:
            return
        x0, y0, x1, y1 = update.box
        mask = record.request.mask
        crop = None if mask is None else mask[y0:y1, x0:x1]
        rect = QRectF(layer.x + x0, layer.y + y0, x1 - x0, y1 - y0)
        self.canvas.set_preview(update.preview, rect, crop)

    def _on_finished(self, update: Update, record: JobRecord) -> None:
        self.canvas.clear_preview()
        if update.kind is EventKind.DONE:
            self._add_result(update, record)
        elif update.kind is EventKind.FAILED:
            prefix = "model error" if update.failure is FailureKind.MODEL else "edit failed"
            self.show_error(f"{prefix}: {update.error}")
        else:
            self.statusBar().showMessage(f"cancelled ({update.message})", 5000)
        if not self.worker.busy:
            message = update.message if update.kind is EventKind.DONE else update.kind.value
            self.progress.show_idle(f"Ready ({message})")

    def _add_result(self, update: Update, record: JobRecord) -> None:
        result, request = update.result, record.request
        doc_uid, source_uid = request.tag
        doc = self.state.doc
        source = doc.layer(source_uid) if doc is not None and doc.uid == doc_uid else None
        if source is None:
            self.show_error("an edit finished after its image or layer was closed; result dropped")
            return
        self._history_ids += 1
        seed = request.settings.seed
        layer = Layer(
            name=f"{request.target_prompt} (seed {seed})",
            pixels=result.image,
            x=source.x,
            y=source.y,
            source_uid=source.uid,
            history_id=self._history_ids,
        )
        self.state.add_layer(layer, self._result_index(source), f"Edit: {layer.name}")
        self.history.add(
            HistoryEntry(
                id=self._history_ids,
                source_prompt=request.source_prompt,
                target_prompt=request.target_prompt,
                settings=request.settings.to_dict(),
                model=result.model_label,
                elapsed=result.elapsed,
                layer_uid=layer.uid,
                thumbnail=result.region,
            )
        )
        self.statusBar().showMessage(f"{layer.name}: {update.message}", 8000)

    def _result_index(self, source: Layer) -> int:
        """Above the source and above its earlier results, so the newest one shows."""
        layers = self.state.doc.layers
        index = layers.index(source) + 1
        while index < len(layers) and layers[index].source_uid == source.uid:
            index += 1
        return index

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
        self.bridge.stop()
        self.worker.shutdown()

    def _save_values(self) -> None:
        if not self.persist:
            return
        self.prefs.set_panel_values(self.prompt.values())
        self.prefs.set_tool_values(self.tools.to_dict())
        self.prefs.model = self.prompt.model_spec
        for spec in reversed(self.prompt.custom_models):
            self.prefs.add_custom_model(spec)
