"""A scripted stand-in for the engine's JobQueue: the test plays the worker thread's events.

It has the JobQueue surface the app uses (submit with a listener, observers, jobs, cancel,
shutdown, model) and nothing runs by itself, so several-target jobs and plug-in jobs can be
driven step by step without the engine.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from cds_desktop.engine.jobs import FINAL, EventKind, JobEvent


class ScriptedJob:
    def __init__(self, job_id: int, request, listener) -> None:
        self.id = job_id
        self.request = request
        self.listener = listener
        self.state = EventKind.QUEUED
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ScriptedQueue:
    model = None

    def __init__(self) -> None:
        self.submitted: list[ScriptedJob] = []
        self.observers: list = []
        self._ids = itertools.count(1)

    def submit(self, request, listener=None) -> ScriptedJob:
        job = ScriptedJob(next(self._ids), request, listener)
        self.submitted.append(job)
        self.play(job, EventKind.QUEUED, message="queued", position=len(self.jobs()))
        return job

    def play(self, job: ScriptedJob, kind: EventKind, **fields) -> None:
        """Report one event of ``job`` as the worker thread would."""
        job.state = EventKind.STARTED if kind is EventKind.PROGRESS else kind
        event = JobEvent(job.id, kind, **fields)
        if job.listener is not None:
            job.listener(event)
        for observer in list(self.observers):
            observer(job, event)

    def jobs(self) -> list[ScriptedJob]:
        return [j for j in self.submitted if j.state not in FINAL]

    def cancel(self, job_id: int) -> bool:
        for job in self.jobs():
            if job.id == job_id:
                job.cancel()
                return True
        return False

    def add_observer(self, observer) -> None:
        self.observers.append(observer)

    def remove_observer(self, observer) -> None:
        self.observers.remove(observer)

    def shutdown(self, wait=True, timeout=None) -> None:
        for job in self.jobs():
            job.cancel()


@dataclass
class ScriptedProgress:
    """Progress with K previews; records which one was asked for."""

    step: int
    total: int
    box: tuple
    elapsed: float = 0.1
    count: int = 1
    asked: list = field(default_factory=list)

    def preview(self, index: int = 0) -> np.ndarray:
        self.asked.append(index)
        x0, y0, x1, y1 = self.box
        return np.full((y1 - y0, x1 - x0, 3), 40 * (index + 1), np.uint8)


@dataclass
class ScriptedResult:
    image: np.ndarray
    region: np.ndarray
    model_label: str = "scripted"
    elapsed: float = 0.5


def result_for(request, value: int) -> ScriptedResult:
    """An EditResult stand-in: the request's image with every pixel's RGB set to ``value``."""
    image = np.array(request.image, copy=True)
    image[..., :3] = value
    return ScriptedResult(image=image, region=image[:8, :8, :3].copy())
