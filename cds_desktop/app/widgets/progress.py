"""Progress panel: state line, step bar with ETA, queue count, Cancel, the target whose
live preview is shown (several-target edits), and an error banner.

It shows the shared queue's running job whoever submitted it (the app or a plug-in), so it
never says "Ready" while any job waits or runs.
"""

from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cds_desktop.engine.jobs import EventKind


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


class ProgressPanel(QWidget):
    cancelRequested = pyqtSignal()
    cancelAllRequested = pyqtSignal()
    previewTargetChanged = pyqtSignal(int)  # index into the running edit's target prompts

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.status = QLabel("Ready", self)
        self.status.setWordWrap(True)
        self.queue = QLabel("", self)
        self.queue.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("")
        self.eta = QLabel("", self)
        self.eta.setWordWrap(True)
        self.cancel = QPushButton("Cancel", self)
        self.cancel.setToolTip("Stop the running job, the app's or a plug-in's (within one step)")
        self.cancel.clicked.connect(self.cancelRequested)
        self.cancel_all = QPushButton("Cancel all", self)
        self.cancel_all.setToolTip("Stop the running job and drop every queued one")
        self.cancel_all.clicked.connect(self.cancelAllRequested)
        self.preview_label = QLabel("Preview", self)
        self.preview_target = QComboBox(self)
        self.preview_target.setToolTip("Which target prompt's live preview the canvas shows")
        self.preview_target.currentIndexChanged.connect(self._on_preview_target)
        self.error = QLabel("", self)
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.setStyleSheet(
            "QLabel { background: #5c1f1f; color: #ffe0e0; padding: 6px; border-radius: 3px; }"
        )
        self.error.hide()
        top = QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.queue)
        bottom = QHBoxLayout()
        bottom.addWidget(self.eta, 1)
        bottom.addWidget(self.cancel)
        bottom.addWidget(self.cancel_all)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addLayout(bottom)
        choice = QHBoxLayout()
        choice.addWidget(self.preview_label)
        choice.addWidget(self.preview_target, 1)
        layout.addLayout(choice)
        layout.addWidget(self.error)
        self.set_counts(0, 0)
        self.set_preview_targets([])

    # ------------------------------------------------------------------ states
    def set_counts(self, running: int, waiting: int) -> None:
        self.queue.setText(f"{waiting} queued" if waiting else "")
        self.cancel.setEnabled(running > 0)
        self.cancel_all.setEnabled(running + waiting > 0)

    def set_preview_targets(self, targets: list[str]) -> None:
        """Offer the running edit's targets (only shown for two or more)."""
        self.preview_target.blockSignals(True)
        self.preview_target.clear()
        self.preview_target.addItems(targets)
        self.preview_target.blockSignals(False)
        for widget in (self.preview_label, self.preview_target):
            widget.setVisible(len(targets) > 1)

    def _on_preview_target(self, index: int) -> None:
        if index >= 0:
            self.previewTargetChanged.emit(index)

    def show_job(self, entry, waiting: int, last_message: str = "") -> None:
        """Show the shared queue's running job (a queue_view.QueueEntry), or the idle state."""
        if entry is None:
            if waiting:
                self.show_idle(f"{waiting} job{'s' if waiting != 1 else ''} waiting")
            else:
                self.show_idle(f"Ready ({last_message})" if last_message else "Ready")
            return
        if entry.state is EventKind.LOADING:
            self.show_loading(entry.message)
            return
        who = "" if entry.origin == "app" else f"{entry.origin}: "
        self.status.setText(f"{who}editing: {entry.title}")
        if entry.state is EventKind.PROGRESS and entry.total:
            self.show_step(entry.step, entry.total, entry.elapsed)
        else:
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
            self.bar.setFormat("")
            self.eta.setText("")

    def show_loading(self, message: str) -> None:
        self.status.setText(message or "Loading model...")
        self.bar.setRange(0, 0)  # busy indicator
        self.bar.setFormat("")
        self.eta.setText("")

    def show_started(self, text: str) -> None:
        self.status.setText(text)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.eta.setText("")

    def show_step(self, step: int, total: int, elapsed: float) -> None:
        self.bar.setRange(0, max(1, total))
        self.bar.setValue(step)
        self.bar.setFormat(f"step {step}/{total}")
        if step > 0:
            eta = elapsed / step * (total - step)
            self.eta.setText(f"{elapsed:.1f} s elapsed, about {format_eta(eta)} left")

    def show_idle(self, message: str) -> None:
        self.status.setText(message)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("")
        self.eta.setText("")

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.setVisible(bool(message))

    def clear_error(self) -> None:
        self.show_error("")
