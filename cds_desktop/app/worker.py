"""The app's link to the engine: one JobQueue, its JobEvents re-emitted as Qt signals.

The JobQueue runs edits on its own worker thread and calls our listener there. The listener
only packs what the GUI needs into an :class:`Update` (a cheap latent preview at most
``PREVIEW_INTERVAL`` apart, progress at most ``PROGRESS_INTERVAL`` apart) and emits it with a
queued connection, so every slot runs in the GUI thread and the window never blocks.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PyQt6.QtCore import QObject, Qt, pyqtSignal, pyqtSlot

from cds_desktop.engine.jobs import FINAL, EditRequest, EventKind, FailureKind, JobEvent, JobQueue

log = logging.getLogger(__name__)

PREVIEW_INTERVAL = 0.1  # s: Progress.preview() at most ~10x per second
PROGRESS_INTERVAL = 0.05  # s: progress updates at most ~20x per second (plus the last step)
#: how much lower the engine's worker thread runs, as a nice increment, so the GUI thread wins
#: when both want the CPU. Threads torch starts from the worker inherit it.
WORKER_NICE = 10
#: Windows thread priorities (winbase.h) and the macOS QoS class (sys/qos.h) used instead
THREAD_PRIORITY_BELOW_NORMAL, THREAD_PRIORITY_LOWEST = -1, -2
QOS_CLASS_UTILITY = 0x11


def _lower_linux(increment: int) -> None:
    """Linux nice values are per thread: renice this thread only."""
    tid = threading.get_native_id()
    os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + increment)


def _lower_windows(increment: int, kernel32=None) -> None:
    if kernel32 is None:
        import ctypes
        from ctypes import wintypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        kernel32.GetCurrentThread.restype = wintypes.HANDLE  # a 64-bit pseudo-handle on x64
        kernel32.SetThreadPriority.argtypes = (wintypes.HANDLE, ctypes.c_int)
        kernel32.SetThreadPriority.restype = wintypes.BOOL
    level = THREAD_PRIORITY_LOWEST if increment >= WORKER_NICE else THREAD_PRIORITY_BELOW_NORMAL
    if not kernel32.SetThreadPriority(kernel32.GetCurrentThread(), level):
        raise OSError("SetThreadPriority failed")


def _lower_macos(increment: int, libsystem=None) -> None:
    """macOS: setpriority would lower the whole process; a per-thread QoS class does not."""
    if libsystem is None:
        import ctypes
        import ctypes.util

        libsystem = ctypes.CDLL(ctypes.util.find_library("System") or "libSystem.dylib")
        libsystem.pthread_set_qos_class_self_np.argtypes = (ctypes.c_uint, ctypes.c_int)
        libsystem.pthread_set_qos_class_self_np.restype = ctypes.c_int
    code = libsystem.pthread_set_qos_class_self_np(QOS_CLASS_UTILITY, 0)
    if code != 0:
        raise OSError(code, "pthread_set_qos_class_self_np failed")


def lower_thread_priority(increment: int = WORKER_NICE, platform: str | None = None) -> bool:
    """Lower the calling thread's CPU priority (Linux, Windows, macOS); True if it changed.

    ``platform`` defaults to ``sys.platform`` (tests pass another one).
    """
    platform = sys.platform if platform is None else platform
    if increment <= 0:
        return False
    if platform.startswith("linux"):
        lower = _lower_linux
    elif platform == "win32":
        lower = _lower_windows
    elif platform == "darwin":
        lower = _lower_macos
    else:
        return False
    try:
        lower(increment)
    except (OSError, AttributeError) as exc:
        log.debug("could not lower the worker's priority: %s", exc)
        return False
    return True


@dataclass
class Update:
    job_id: int
    kind: EventKind
    step: int = 0
    total: int = 0
    elapsed: float = 0.0
    preview: np.ndarray | None = None  # (h, w, 3) uint8 of the working region
    box: tuple[int, int, int, int] | None = None  # working region, in layer pixels
    result: Any = None  # EditResult on "done" (= results[0])
    results: tuple = ()  # on "done": one EditResult per target prompt
    error: str | None = None
    message: str = ""
    device: str = ""
    failure: FailureKind | None = None  # on FAILED


@dataclass
class JobRecord:
    """What the app keeps about a submitted job."""

    id: int
    request: EditRequest
    job: Any
    state: EventKind = EventKind.QUEUED
    extra: dict = field(default_factory=dict)


class EditWorker(QObject):
    """Owns the JobQueue; signals carry (job_id, ...) and arrive in the GUI thread."""

    _relay = pyqtSignal(object)
    queued = pyqtSignal(int, str)
    loading = pyqtSignal(int, str)
    started = pyqtSignal(int, str, str)  # job id, model label, device
    progressed = pyqtSignal(object)  # Update
    finished = pyqtSignal(object, object)  # Update (done | failed | cancelled), JobRecord
    countsChanged = pyqtSignal(int, int)  # running (0/1), waiting

    def __init__(
        self, queue: JobQueue | None = None, parent: QObject | None = None, nice: int = WORKER_NICE
    ) -> None:
        super().__init__(parent)
        self.nice = nice
        self._reniced: set[int] = set()
        self.queue = queue or JobQueue()
        self.jobs: dict[int, JobRecord] = {}
        self._last: dict[int, tuple[float, float]] = {}  # job -> (last progress, last preview)
        self._lock = threading.Lock()
        self._closed = False
        #: which target's preview a several-target job shows (read on the worker thread)
        self.preview_index = 0
        self._relay.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)

    # ------------------------------------------------------------------ GUI-thread API
    def submit(self, request: EditRequest, **extra) -> int:
        job = self.queue.submit(request, self._listen)
        self.jobs[job.id] = JobRecord(job.id, request, job, extra=extra)
        self._emit_counts()
        return job.id

    def cancel(self, job_id: int) -> None:
        record = self.jobs.get(job_id)
        if record is not None:
            record.job.cancel()

    def cancel_current(self) -> int | None:
        current = self.current_id()
        if current is not None:
            self.cancel(current)
        return current

    def cancel_all(self) -> None:
        for record in list(self.jobs.values()):
            record.job.cancel()

    def current_id(self) -> int | None:
        running = [
            r.id for r in self.jobs.values() if r.state in (EventKind.LOADING, EventKind.STARTED)
        ]
        return running[0] if running else None

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    def counts(self) -> tuple[int, int]:
        running = sum(r.state in (EventKind.LOADING, EventKind.STARTED) for r in self.jobs.values())
        return running, len(self.jobs) - running

    def shutdown(self, timeout: float = 15.0) -> None:
        """Cancel everything and stop the worker thread (waits for it)."""
        self._closed = True
        self.queue.shutdown(wait=True, timeout=timeout)

    # ------------------------------------------------------------------ worker thread
    def _listen(self, event: JobEvent) -> None:
        """Called by the JobQueue on its worker thread: pack and relay."""
        if self._closed and event.kind not in FINAL:
            return
        self._renice_worker()
        update = Update(
            event.job_id,
            event.kind,
            error=event.error,
            message=event.message,
            failure=event.failure,
        )
        if event.kind is EventKind.PROGRESS:
            if not self._fill_progress(update, event):
                return
        elif event.kind is EventKind.STARTED:
            model = self.queue.model
            update.device = str(getattr(model, "device", "")) if model is not None else ""
        elif event.kind is EventKind.DONE:
            update.result = event.result
            update.results = tuple(event.results) or (event.result,)
        self._relay.emit(update)

    def _renice_worker(self) -> None:
        """Once per worker thread, before it does any work (its first event is loading/started)."""
        thread = threading.current_thread()
        if thread is threading.main_thread() or thread.ident in self._reniced:
            return
        self._reniced.add(thread.ident)
        lower_thread_priority(self.nice)

    def _fill_progress(self, update: Update, event: JobEvent) -> bool:
        p = event.progress
        now = time.monotonic()
        with self._lock:
            last_progress, last_preview = self._last.get(event.job_id, (0.0, 0.0))
            final = p.step >= p.total
            if not final and now - last_progress < PROGRESS_INTERVAL:
                return False
            want_preview = final or now - last_preview >= PREVIEW_INTERVAL
            self._last[event.job_id] = (now, now if want_preview else last_preview)
        update.step, update.total, update.elapsed, update.box = p.step, p.total, p.elapsed, p.box
        if want_preview:
            try:
                index = self.preview_index
                update.preview = p.preview(index) if index else p.preview()
            except Exception:  # a preview must never break the edit
                log.exception("preview failed")
        return True

    # ------------------------------------------------------------------ GUI thread
    @pyqtSlot(object)
    def _dispatch(self, update: Update) -> None:
        record = self.jobs.get(update.job_id)
        if record is None:
            return
        kind = update.kind
        if kind not in (EventKind.QUEUED, EventKind.PROGRESS):
            # "queued" is posted by submit() in this thread and may arrive after the worker
            # already reported "started": it must not move the state back
            record.state = kind
        if kind is EventKind.QUEUED:
            self.queued.emit(update.job_id, update.message)
        elif kind is EventKind.LOADING:
            self.loading.emit(update.job_id, update.message)
        elif kind is EventKind.STARTED:
            self.started.emit(update.job_id, update.message, update.device)
        elif kind is EventKind.PROGRESS:
            self.progressed.emit(update)
        elif kind in FINAL:
            del self.jobs[update.job_id]
            with self._lock:
                self._last.pop(update.job_id, None)
            self.finished.emit(update, record)
        self._emit_counts()

    def record(self, job_id: int) -> JobRecord | None:
        return self.jobs.get(job_id)

    def _emit_counts(self) -> None:
        self.countsChanged.emit(*self.counts())
