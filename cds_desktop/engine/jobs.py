"""One worker thread that owns the model, and a FIFO queue of edit jobs.

The desktop app and the bridge server share one JobQueue, so edits from the app and from
plug-ins run one at a time in submission order. Each job reports JobEvents to its listener
(called on the worker thread; the app re-emits them as Qt signals, the bridge as messages):

    queued -> loading (only when a model must be loaded) -> started -> progress* ->
    done | failed | cancelled

A job cancelled while queued never starts; a running job stops within one step. A request
with several target prompts (``target_prompt`` + ``extra_targets``) runs as one shared edit
(``run_edits``): one job, one progress stream with ``Progress.count`` = K, one DONE event with
``results`` (one EditResult per target, in order; ``result`` is the first); cancel stops all.

Observers (:meth:`JobQueue.add_observer`) see every event of every job, whoever submitted it:
the app uses one to show the plug-ins' jobs beside its own.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from .cds import EditResult, Progress, drain, run_edits
from .errors import EditCancelled, EditError, ModelError
from .models import DEMO_MODEL, LoadedModel, load_model
from .settings import EditSettings
from .specs import DEFAULT_VAE_BACKEND

log = logging.getLogger(__name__)


class EventKind(Enum):
    """What a JobEvent reports. Values are the words shown to users and logged."""

    QUEUED = "queued"
    LOADING = "loading"
    STARTED = "started"
    PROGRESS = "progress"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in FINAL


class FailureKind(Enum):
    """Why a job FAILED: the caller maps it to a dialog, an exit code or a protocol code."""

    USER_INPUT = "user input"  # bad image, mask, prompt or settings: the message says what to fix
    MODEL = "model"  # the model could not be found or loaded
    INTERNAL = "internal"  # a bug or an unexpected environment failure; details in the log


QUEUED, LOADING, STARTED, PROGRESS, DONE, FAILED, CANCELLED = EventKind
FINAL = frozenset({DONE, FAILED, CANCELLED})


@dataclass(frozen=True)
class EditRequest:
    image: np.ndarray  # (H, W, 3|4) uint8; never modified
    source_prompt: str
    target_prompt: str
    mask: np.ndarray | None = None  # (H, W); 0 = keep, >0 = edit
    settings: EditSettings = field(default_factory=EditSettings)
    model: str = DEMO_MODEL
    device: str = "auto"
    dtype: str = "auto"
    vae_backend: str = DEFAULT_VAE_BACKEND
    tag: Any = None  # opaque caller data (layer id, client, ...)
    #: more target prompts edited in the same shared run (one result each, after target_prompt)
    extra_targets: tuple[str, ...] = ()
    #: settings the caller left unset (names in settings.MODEL_DEFAULTS): the worker fills them
    #: from the loaded model's recommended values (e.g. guidance 5 for SDXL) before it runs
    model_defaults: frozenset[str] = frozenset()
    #: who submitted it, shown in queue views: "app", or a plug-in client's name
    origin: str = ""

    @property
    def target_prompts(self) -> tuple[str, ...]:
        """Every target prompt of the job, in result order."""
        return (self.target_prompt, *self.extra_targets)

    @property
    def model_key(self) -> tuple:
        return (self.model, self.device, self.dtype, self.vae_backend)


@dataclass
class JobEvent:
    job_id: int
    kind: EventKind
    progress: Progress | None = None
    result: EditResult | None = None  # = results[0]
    error: str | None = None
    message: str = ""
    failure: FailureKind | None = None  # set on FAILED
    position: int = 0  # on QUEUED: 1 = next to run (counting the running job)
    results: tuple[EditResult, ...] = ()  # DONE: one per target prompt, in order


Listener = Callable[[JobEvent], None]
#: runs on the worker thread when a job starts and returns the request to run (the bridge
#: keeps uploads compressed while queued and decodes them here); EditError -> USER_INPUT
Prepare = Callable[[EditRequest], EditRequest]
Observer = Callable[["Job", JobEvent], None]


class Job:
    def __init__(
        self,
        job_id: int,
        request: EditRequest,
        listener: Listener | None,
        prepare: Prepare | None = None,
        notify: Observer | None = None,
    ) -> None:
        self.id = job_id
        self.request = request
        self._prepare = prepare
        self.state = QUEUED
        self.result: EditResult | None = None
        self.results: tuple[EditResult, ...] = ()
        self.error: str | None = None
        self._listener = listener
        self._notify = notify
        self._cancel = threading.Event()
        self._finished = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job is done, failed or cancelled. True if it finished in time."""
        return self._finished.wait(timeout)

    def _emit(self, event: JobEvent) -> None:
        self.state = STARTED if event.kind == PROGRESS else event.kind
        if event.kind in FINAL:
            self.result, self.results, self.error = event.result, event.results, event.error
        if self._listener is not None:
            try:
                self._listener(event)
            except Exception:  # a broken listener must not kill the worker
                log.exception("job listener failed")
        if self._notify is not None:
            self._notify(self, event)
        if event.kind in FINAL:
            self._finished.set()


class JobQueue:
    """FIFO edit queue with one lazily started worker thread that keeps the last model."""

    def __init__(self, loader: Callable[..., LoadedModel] = load_model) -> None:
        self._loader = loader
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._model: LoadedModel | None = None
        self._model_key: tuple | None = None
        self.current: Job | None = None
        self._observers: tuple[Observer, ...] = ()

    # ------------------------------------------------------------------ public API
    def submit(
        self, request: EditRequest, listener: Listener | None = None, prepare: Prepare | None = None
    ) -> Job:
        """Queue an edit. ``prepare`` (optional) replaces the request when the job starts."""
        with self._cond:
            if self._stopping:
                raise RuntimeError("the job queue is shut down")
            job = Job(next(self._ids), request, listener, prepare, self._notify)
            position = len(self._queue) + 1 + (self.current is not None)
        # reported before the worker can see the job, so QUEUED always comes first
        job._emit(
            JobEvent(job.id, QUEUED, message=f"queued (position {position})", position=position)
        )
        with self._cond:
            if self._stopping:
                job._emit(JobEvent(job.id, CANCELLED, message="the job queue is shutting down"))
                return job
            self._queue.append(job)
            self._ensure_worker()
            self._cond.notify()
        return job

    def cancel(self, job_id: int) -> bool:
        with self._cond:
            jobs = list(self._queue) + ([self.current] if self.current else [])
        for job in jobs:
            if job.id == job_id:
                job.cancel()
                return True
        return False

    def pending(self) -> list[Job]:
        with self._cond:
            return list(self._queue)

    def jobs(self) -> list[Job]:
        """The running job (if any) and the waiting ones, in the order they will run."""
        with self._cond:
            return ([self.current] if self.current is not None else []) + list(self._queue)

    def add_observer(self, observer: Observer) -> None:
        """Call ``observer(job, event)`` for every event of every job (after the job's own
        listener, on the thread that reports it: the submitter's for QUEUED, else the worker)."""
        with self._cond:
            self._observers = (*self._observers, observer)

    def remove_observer(self, observer: Observer) -> None:
        with self._cond:
            self._observers = tuple(o for o in self._observers if o is not observer)

    def _notify(self, job: Job, event: JobEvent) -> None:
        for observer in self._observers:
            try:
                observer(job, event)
            except Exception:  # a broken observer must not kill the worker
                log.exception("job observer failed")

    @property
    def model(self) -> LoadedModel | None:
        return self._model

    def shutdown(self, wait: bool = True, timeout: float | None = 30.0) -> None:
        """Cancel everything and stop the worker thread."""
        with self._cond:
            self._stopping = True
            for job in self._queue:
                job.cancel()
            if self.current is not None:
                self.current.cancel()
            self._cond.notify_all()
            thread = self._thread
        if wait and thread is not None:
            thread.join(timeout)

    # ------------------------------------------------------------------ worker
    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="cds-job-worker", daemon=True)
            self._thread.start()

    def _next_job(self) -> Job | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if not self._queue:
                return None
            self.current = self._queue.popleft()
            return self.current

    def _work(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            try:
                self._run(job)
            finally:
                with self._cond:
                    self.current = None

    def _run(self, job: Job) -> None:
        if job.cancel_requested:
            job._emit(JobEvent(job.id, CANCELLED, message="cancelled before it started"))
            return
        if job._prepare is not None:
            try:
                job.request = job._prepare(job.request)
            except EditError as exc:
                job._emit(JobEvent(job.id, FAILED, error=str(exc), failure=FailureKind.USER_INPUT))
                return
            except Exception as exc:  # noqa: BLE001 - report, keep the worker alive
                error = describe_failure(exc)
                job._emit(JobEvent(job.id, FAILED, error=error, failure=FailureKind.INTERNAL))
                return
        loaded = False
        try:
            model = self._get_model(job)
            loaded = True
            if job.cancel_requested:
                raise EditCancelled("cancelled while the model was loading")
            job._emit(JobEvent(job.id, STARTED, message=model.label))
            r = job.request
            settings = r.settings.with_model_defaults(model.recommended, r.model_defaults)
            gen = run_edits(
                model, r.image, r.source_prompt, r.target_prompts, r.mask, settings, job._cancel
            )
            results = tuple(drain(gen, lambda p: job._emit(JobEvent(job.id, PROGRESS, progress=p))))
            job._emit(
                JobEvent(
                    job.id,
                    DONE,
                    result=results[0],
                    results=results,
                    message=f"done in {results[0].elapsed:.1f} s",
                )
            )
        except EditCancelled as exc:
            job._emit(JobEvent(job.id, CANCELLED, message=str(exc)))
        except ModelError as exc:
            job._emit(JobEvent(job.id, FAILED, error=str(exc), failure=FailureKind.MODEL))
        except EditError as exc:  # raised while loading: a model/device problem
            kind = FailureKind.USER_INPUT if loaded else FailureKind.MODEL
            job._emit(JobEvent(job.id, FAILED, error=str(exc), failure=kind))
        except Exception as exc:  # noqa: BLE001 - report, keep the worker alive
            job._emit(
                JobEvent(job.id, FAILED, error=describe_failure(exc), failure=FailureKind.INTERNAL)
            )

    def _get_model(self, job: Job) -> LoadedModel:
        r = job.request
        if self._model is None or self._model_key != r.model_key:
            job._emit(JobEvent(job.id, LOADING, message=f"loading model {r.model} ..."))
            self._model = None  # free the old one first
            self._model = self._loader(
                r.model, device=r.device, dtype=r.dtype, vae_backend=r.vae_backend
            )
            self._model_key = r.model_key
        return self._model


def describe_failure(exc: BaseException) -> str:
    """A one-line, user-readable message for an unexpected exception (traceback goes to the log)."""
    name = type(exc).__name__
    if "OutOfMemory" in name or "out of memory" in str(exc).lower():
        return "out of memory: use a smaller working size, close other GPU programs, or use --device cpu"
    log.error("edit failed", exc_info=exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"internal error ({name}{': ' + first if first else ''}); details are in the log"
