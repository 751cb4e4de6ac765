"""EditWorker: event ordering, throttled previews, and re-emission in the GUI thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from cds_desktop.app import worker as worker_module
from cds_desktop.app.worker import EditWorker, Update
from cds_desktop.engine.jobs import EventKind, JobEvent


class FakeJob:
    def __init__(self, job_id: int) -> None:
        self.id = job_id
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeQueue:
    """Records the listener; the test plays the worker thread."""

    model = None

    def __init__(self) -> None:
        self.listener = None

    def submit(self, request, listener):
        self.listener = listener
        return FakeJob(1)

    def shutdown(self, wait=True, timeout=None):
        pass


@dataclass
class FakeProgress:
    step: int
    total: int
    box: tuple = (0, 0, 4, 4)
    elapsed: float = 0.1
    calls: int = 0

    def preview(self):
        self.calls += 1
        return np.zeros((2, 2, 3), np.uint8)


def test_late_queued_event_does_not_hide_the_running_job(qtbot):
    w = EditWorker(FakeQueue())
    job_id = w.submit(request=None)
    counts = []
    w.countsChanged.connect(lambda running, waiting: counts.append((running, waiting)))
    w._dispatch(Update(job_id, EventKind.STARTED))
    w._dispatch(Update(job_id, EventKind.QUEUED))  # posted by submit(), arrives after "started"
    assert counts[-1] == (1, 0) and w.current_id() == job_id
    w.cancel_current()
    assert w.jobs[job_id].job.cancelled


def test_progress_and_previews_are_throttled_and_arrive_in_the_gui_thread(qtbot, monkeypatch):
    queue = FakeQueue()
    w = EditWorker(queue, nice=0)
    w.submit(request=None)
    clock = [100.0]
    monkeypatch.setattr(worker_module.time, "monotonic", lambda: clock[0])
    received, threads = [], []

    def on_progress(update):
        received.append(update)
        threads.append(threading.current_thread())

    w.progressed.connect(on_progress)
    progresses = [FakeProgress(step, 10) for step in range(1, 11)]

    def play():  # the engine's worker thread: 10 steps, 10 ms apart
        for p in progresses:
            queue.listener(JobEvent(1, EventKind.PROGRESS, progress=p))
            clock[0] += 0.01

    t = threading.Thread(target=play)
    t.start()
    t.join()
    qtbot.waitUntil(lambda: bool(received) and received[-1].step == 10, timeout=5000)
    steps = [u.step for u in received]
    assert steps[0] == 1 and steps[-1] == 10 and len(steps) < 10  # ~every 50 ms + the last
    assert sum(p.calls for p in progresses) <= 3  # previews at most every 100 ms (+ last)
    assert received[-1].preview is not None
    assert all(th is threading.main_thread() for th in threads)


def test_live_preview_is_limited_to_the_mask():
    from cds_desktop.app.widgets.canvas import preview_rgba

    rgb = np.full((4, 4, 3), 200, np.uint8)
    assert preview_rgba(rgb, None)[..., 3].min() == 255
    mask = np.zeros((40, 40), np.uint8)
    mask[:, 20:] = 255
    out = preview_rgba(rgb, mask)
    assert out.shape == (40, 40, 4)
    assert out[10, 5, 3] == 0 and out[10, 35, 3] == 255
