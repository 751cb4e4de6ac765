"""Every job in the shared JobQueue — the app's and the plug-ins' — as a Qt model.

The bridge submits Krita/GIMP/client edits into the app's JobQueue, so the app's own listener
never hears of them. :class:`QueueModel` observes the queue itself (``add_observer``): the
observer runs on the submitting or the worker thread, packs what a list row needs into a
:class:`QueueEntry` (progress at most every ``PROGRESS_INTERVAL``, always the last step) and
relays it with a queued connection, so the entries change only in the GUI thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from PyQt6.QtCore import QObject, Qt, pyqtSignal, pyqtSlot

from cds_desktop.engine.jobs import FINAL, EventKind, Job, JobEvent, JobQueue

PROGRESS_INTERVAL = 0.1  # s between progress updates of one job in the list


def origin_label(origin: str) -> str:
    """EditRequest.origin -> what the list shows: app, Krita, GIMP or client."""
    text = (origin or "").lower()
    if text == "app":
        return "app"
    if "krita" in text:
        return "Krita"
    if "gimp" in text:
        return "GIMP"
    return "client"


@dataclass(frozen=True)
class QueueEntry:
    job_id: int
    origin: str  # app | Krita | GIMP | client
    targets: tuple[str, ...]
    state: EventKind = EventKind.QUEUED
    step: int = 0
    total: int = 0
    elapsed: float = 0.0
    message: str = ""

    @property
    def running(self) -> bool:
        return self.state in (EventKind.LOADING, EventKind.STARTED, EventKind.PROGRESS)

    @property
    def title(self) -> str:
        return " | ".join(self.targets)

    @property
    def state_text(self) -> str:
        if self.state is EventKind.LOADING:
            return "loading model"
        if self.state is EventKind.PROGRESS and self.total:
            return f"step {self.step}/{self.total}"
        if self.state is EventKind.STARTED:
            return "starting"
        return self.state.value


class QueueModel(QObject):
    """The shared queue's jobs in run order; ``changed`` after every update."""

    changed = pyqtSignal()
    jobFinished = pyqtSignal(object, str)  # QueueEntry, its last message
    _relay = pyqtSignal(object, object, str)  # QueueEntry, EventKind, message

    def __init__(self, queue: JobQueue, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.queue = queue
        self.entries: dict[int, QueueEntry] = {}
        self.last_message = ""
        self._sent: dict[int, float] = {}
        self._lock = threading.Lock()
        self._relay.connect(self._apply, Qt.ConnectionType.QueuedConnection)
        for job in queue.jobs():  # jobs submitted before the view existed
            self.entries[job.id] = _entry(job, job.state)
        queue.add_observer(self._observe)

    def close(self) -> None:
        self.queue.remove_observer(self._observe)

    # ------------------------------------------------------------------ GUI-thread API
    @property
    def busy(self) -> bool:
        return bool(self.entries)

    def running(self) -> QueueEntry | None:
        return next((e for e in self.entries.values() if e.running), None)

    def counts(self) -> tuple[int, int]:
        running = sum(e.running for e in self.entries.values())
        return running, len(self.entries) - running

    def cancel(self, job_id: int) -> bool:
        return self.queue.cancel(job_id)

    def cancel_running(self) -> int | None:
        entry = self.running()
        if entry is not None:
            self.cancel(entry.job_id)
        return entry.job_id if entry else None

    def cancel_all(self) -> None:
        for job_id in list(self.entries):
            self.cancel(job_id)

    # ------------------------------------------------------------------ any thread
    def _observe(self, job: Job, event: JobEvent) -> None:
        entry = _entry(job, event.kind)
        if event.kind is EventKind.PROGRESS:
            p = event.progress
            now = time.monotonic()
            with self._lock:
                final = p.step >= p.total
                if not final and now - self._sent.get(job.id, 0.0) < PROGRESS_INTERVAL:
                    return
                self._sent[job.id] = now
            entry = replace(entry, step=p.step, total=p.total, elapsed=p.elapsed)
        elif event.kind in FINAL:
            with self._lock:
                self._sent.pop(job.id, None)
        message = event.error or event.message or ""
        self._relay.emit(entry, event.kind, message)

    # ------------------------------------------------------------------ GUI thread
    @pyqtSlot(object, object, str)
    def _apply(self, entry: QueueEntry, kind: EventKind, message: str) -> None:
        old = self.entries.get(entry.job_id)
        if kind in FINAL:
            self.entries.pop(entry.job_id, None)
            self.last_message = message if kind is EventKind.DONE else kind.value
            self.changed.emit()
            self.jobFinished.emit(entry, message)
            return
        if old is not None and kind is EventKind.QUEUED:
            return  # a late QUEUED must not move a running job back
        self.entries[entry.job_id] = replace(entry, message=message)
        self.changed.emit()


def _entry(job: Job, kind: EventKind) -> QueueEntry:
    request = job.request
    state = EventKind.QUEUED if kind in FINAL else kind
    return QueueEntry(
        job_id=job.id,
        origin=origin_label(request.origin),
        targets=tuple(request.target_prompts),
        state=state,
        total=request.settings.steps,
    )
