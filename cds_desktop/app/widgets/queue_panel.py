"""The queue list: every job waiting or running in the shared queue, with its origin
(app, Krita, GIMP, client), its progress and a button that cancels just that job."""

from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..queue_view import QueueEntry


class QueueRow(QWidget):
    cancelRequested = pyqtSignal(int)

    def __init__(self, entry: QueueEntry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job_id = entry.job_id
        self.origin = QLabel(self)
        self.origin.setStyleSheet("QLabel { font-weight: bold; }")
        self.title = QLabel(self)
        self.title.setWordWrap(True)
        self.state = QLabel(self)
        self.bar = QProgressBar(self)
        self.bar.setTextVisible(False)
        self.bar.setFixedWidth(70)
        self.bar.setMaximumHeight(10)
        self.cancel = QToolButton(self)
        self.cancel.setText("Cancel")
        self.cancel.setAutoRaise(True)
        self.cancel.setToolTip("Cancel this job (the others keep their places)")
        self.cancel.clicked.connect(lambda: self.cancelRequested.emit(self.job_id))
        row = QHBoxLayout(self)
        row.setContentsMargins(2, 1, 2, 1)
        row.addWidget(self.origin)
        row.addWidget(self.title, 1)
        row.addWidget(self.state)
        row.addWidget(self.bar)
        row.addWidget(self.cancel)
        self.update_entry(entry)

    def update_entry(self, entry: QueueEntry) -> None:
        self.entry = entry
        self.origin.setText(f"[{entry.origin}]")
        self.title.setText(entry.title)
        self.state.setText(entry.state_text)
        if entry.running and entry.total and entry.step:
            self.bar.setRange(0, entry.total)
            self.bar.setValue(entry.step)
        elif entry.running:
            self.bar.setRange(0, 0)  # loading / starting: busy
        else:
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
        self.setToolTip(f"job {entry.job_id} from {entry.origin}: {entry.title}")


class QueuePanel(QWidget):
    """Rows in run order (the running job first); hidden while the queue is empty."""

    cancelRequested = pyqtSignal(int)  # job id

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.heading = QLabel("Queue", self)
        self.heading.setStyleSheet("QLabel { color: palette(mid); }")
        self.column = QVBoxLayout(self)
        self.column.setContentsMargins(4, 0, 4, 4)
        self.column.setSpacing(0)
        self.column.addWidget(self.heading)
        self.rows: dict[int, QueueRow] = {}
        self.set_entries([])

    def set_entries(self, entries: list[QueueEntry]) -> None:
        wanted = {e.job_id for e in entries}
        for job_id in [j for j in self.rows if j not in wanted]:
            row = self.rows.pop(job_id)
            self.column.removeWidget(row)
            row.deleteLater()
        for position, entry in enumerate(entries, start=1):
            row = self.rows.get(entry.job_id)
            if row is None:
                row = QueueRow(entry, self)
                row.cancelRequested.connect(self.cancelRequested)
                self.rows[entry.job_id] = row
            else:
                row.update_entry(entry)
            if self.column.indexOf(row) != position:
                self.column.removeWidget(row)
                self.column.insertWidget(position, row)
        self.heading.setText(f"Queue ({len(entries)})")
        self.setVisible(bool(entries))
