"""One authenticated client's requests and jobs, without sockets.

A :class:`ClientSession` turns request messages into engine jobs and engine events into
messages, handing every outgoing item to ``send``. It never blocks: ``send`` only queues, and
the connection's writer thread builds :class:`Deferred` items (PNG encoding) and writes
them. Tests drive a session with a plain list as ``send`` and a fake queue.

Every job ends with exactly one final message (``result`` or ``error``): the engine's final
event, or the ``CANCELLED`` that :meth:`ClientSession.end_all` sends when the server stops,
whichever comes first.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cds_desktop.engine import EditError
from cds_desktop.engine import jobs as J
from cds_desktop.engine.models import DEMO_MODEL
from plugin_bridge import protocol as P

from .images import ImageError, encode_png_array
from .limits import MAX_ERROR_CHARS, MAX_NONCE_BYTES, ByteBudget, ServerLimits
from .requests import EditSpec, ModelChoice, RequestError, bad, parse_edit

log = logging.getLogger(__name__)

#: protocol error code for each kind of job failure
FAILURE_CODES = {
    J.FailureKind.USER_INPUT: P.EDIT_FAILED,
    J.FailureKind.MODEL: P.MODEL_ERROR,
    J.FailureKind.INTERNAL: P.INTERNAL,
    None: P.INTERNAL,
}


@dataclass(frozen=True)
class Deferred:
    """A message built later, on the writer thread (so the engine's worker never encodes
    PNGs for a client). ``droppable``: a progress update a slow reader may miss."""

    job: str | None
    build: Callable[[], P.Message]
    droppable: bool = False


#: what a session hands to ``send``
Outgoing = P.Message | Deferred
Send = Callable[[Outgoing], None]
Submit = Callable[[J.EditRequest, J.Listener, J.Prepare], J.Job]


def is_droppable(item: Outgoing) -> bool:
    if isinstance(item, Deferred):
        return item.droppable
    return item.type == P.PROGRESS and item.get("stage") == "running"


def error_message(code: str, message: str, job: str | None = None, fatal: bool = False):
    """An error frame whose text is cut to MAX_ERROR_CHARS (so it always fits a header)."""
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 3] + "..."
    return P.error(code, message, job=job, fatal=fatal)


@dataclass
class _JobState:
    spec: EditSpec
    engine: J.Job | None = None
    finished: bool = False
    last_preview: float = float("-inf")
    reserved: int = 0  # bytes of the queue budget this job holds until it starts
    decode_error: ImageError | None = None


class ClientSession:
    """Requests and jobs of one client. ``handle`` runs on the connection's reader thread,
    engine listeners on the worker thread; both only call ``send``."""

    def __init__(
        self,
        send: Send,
        submit: Submit,
        *,
        limits: ServerLimits = ServerLimits(),
        choice: Callable[[], ModelChoice] = lambda: ModelChoice(DEMO_MODEL),
        queue_length: Callable[[], int] = lambda: 0,
        budget: ByteBudget | None = None,
        name: str = "client",
        tag: Any = None,
        origin: str = "client",
    ) -> None:
        self.send = send
        self.submit = submit
        self.limits = limits
        self.choice = choice
        self.queue_length = queue_length
        self.budget = budget if budget is not None else ByteBudget(limits.max_queued_bytes)
        self.name = name
        self.tag = tag
        self.origin = origin  # EditRequest.origin: the client's name from its hello
        self._jobs: dict[str, _JobState] = {}
        self._lock = threading.Lock()
        self._ended = False

    @property
    def active_jobs(self) -> int:
        with self._lock:
            return len(self._jobs)

    # ------------------------------------------------------------------ requests
    def handle(self, msg: P.Message) -> None:
        """Answer one request. Only a fatal P.ProtocolError escapes (the caller closes)."""
        try:
            handler = {
                P.EDIT: self._on_edit,
                P.CANCEL: self._on_cancel,
                P.PING: self._on_ping,
            }.get(msg.type)
            if handler is None:
                raise bad(
                    f"unexpected message type {_short(msg.type)}; expected one of edit, "
                    "cancel, ping"
                )
            handler(msg)
        except RequestError as exc:
            self.send(error_message(exc.code, exc.message, job=msg.job))
        except P.ProtocolError as exc:
            if exc.fatal:
                raise
            self.send(error_message(exc.code, exc.message, job=msg.job))
        except Exception:  # noqa: BLE001
            log.exception("%s: failed to handle %s", self.name, _short(msg.type))
            self.send(error_message(P.INTERNAL, "unexpected server error; see the log", msg.job))

    def _on_ping(self, msg: P.Message) -> None:
        nonce = msg.get("nonce")
        if len(json.dumps(nonce)) > MAX_NONCE_BYTES:
            raise bad(f"nonce is longer than {MAX_NONCE_BYTES} bytes of JSON")
        self.send(P.Message(P.PONG, None, nonce=nonce, queue=self.queue_length()))

    def _on_cancel(self, msg: P.Message) -> None:
        with self._lock:
            state = self._jobs.get(msg.job) if msg.job is not None else None
        if state is not None and state.engine is not None:
            log.info("%s cancels job %s", self.name, msg.job)
            state.engine.cancel()

    def _on_edit(self, msg: P.Message) -> None:
        job_id = msg.job
        if job_id is None:
            raise bad("an edit needs a job id")
        with self._lock:
            if job_id in self._jobs:
                # no job id on this error: the id belongs to the job already running
                self.send(error_message(P.BAD_REQUEST, f"job id {job_id!r} is already in use"))
                return
            if self._ended:
                raise RequestError(P.BUSY, "the server is stopping")
            if len(self._jobs) >= self.limits.max_jobs_per_client:
                raise RequestError(
                    P.BUSY,
                    f"{len(self._jobs)} jobs already in flight on this connection "
                    f"(max {self.limits.max_jobs_per_client})",
                )
            spec = parse_edit(msg, self.limits)
            state = _JobState(spec)
            self._jobs[job_id] = state
        try:
            self._submit(state)
        except BaseException:
            with self._lock:
                self._jobs.pop(job_id, None)
            raise

    def _submit(self, state: _JobState) -> None:
        """Queue the job with its uploads still compressed; they are decoded by ``prepare``
        on the worker thread when the job starts (one decoded job in memory at a time)."""
        spec = state.spec
        size = spec.upload_bytes
        if not self.budget.reserve(size):
            raise RequestError(
                P.BUSY,
                f"the queue already holds {_mib(self.budget.used)} of uploads (max "
                f"{_mib(self.budget.capacity)}); send this edit when a job has finished",
            )
        state.reserved = size
        placeholder = np.empty((0, 0, 4), np.uint8)  # replaced by prepare()
        request = spec.engine_request(
            placeholder, None, self.choice(), ("bridge", self.tag, spec.job), origin=self.origin
        )
        try:
            job = self.submit(request, self._listener(state), self._preparer(state))
        except RuntimeError as exc:  # the queue is shut down
            self._release(state)
            raise RequestError(P.BUSY, f"the server is stopping ({exc})") from None
        except BaseException:
            self._release(state)
            raise
        with self._lock:
            ended = state.finished  # end_all() came while submitting: already told CANCELLED
            if not ended:
                state.engine = job
        if ended:
            job.cancel()

    def _preparer(self, state: _JobState) -> J.Prepare:
        def prepare(request: J.EditRequest) -> J.EditRequest:
            self._release(state)
            try:
                image, mask = state.spec.decode(self.limits.max_pixels)
            except ImageError as exc:
                state.decode_error = exc
                raise EditError(exc.message) from None
            return dataclasses.replace(request, image=image, mask=mask)

        return prepare

    def _release(self, state: _JobState) -> None:
        with self._lock:
            size, state.reserved = state.reserved, 0
        if size:
            self.budget.release(size)

    # ------------------------------------------------------------------ ending
    def end_all(self, reason: str) -> None:
        """Cancel every job and send each its final CANCELLED now (the server is stopping).
        Later engine events of these jobs are not sent; new edits get BUSY."""
        with self._lock:
            self._ended = True
            states = list(self._jobs.values())
        for state in states:
            if state.engine is not None:
                state.engine.cancel()
            self._finish(state, error_message(P.CANCELLED, reason, job=state.spec.job))

    def cancel_all(self) -> None:
        """The client is gone: cancel its jobs (nothing is sent)."""
        with self._lock:
            jobs = [s.engine for s in self._jobs.values() if s.engine is not None]
        for job in jobs:
            log.info("%s gone: cancelling its job %s", self.name, job.id)
            job.cancel()

    def _finish(self, state: _JobState, message: Outgoing | None) -> bool:
        """Send a job's final message unless it already had one. True if this one was sent."""
        self._release(state)
        with self._lock:
            if state.finished:
                return False
            state.finished = True
            if self._jobs.get(state.spec.job) is state:
                del self._jobs[state.spec.job]
            state.engine = None  # job -> listener -> state -> job: no cycle left for the GC
        if message is not None:
            self.send(message)
        return True

    # ------------------------------------------------------------------ engine events
    def _listener(self, state: _JobState) -> J.Listener:
        def on_event(event: J.JobEvent) -> None:
            message = self._translate(state, event)
            if event.kind.final:
                if self._finish(state, message):
                    log.info("%s job %s: %s", self.name, state.spec.job, event.kind.value)
            elif message is not None and not state.finished:
                self.send(message)

        return on_event

    def _translate(self, state: _JobState, event: J.JobEvent) -> Outgoing | None:
        job = state.spec.job
        if event.kind is J.QUEUED:
            return P.Message(P.QUEUED, job, position=event.position, message=event.message)
        if event.kind in (J.LOADING, J.STARTED):
            stage = "loading" if event.kind is J.LOADING else "started"
            total = state.spec.settings.steps
            return P.Message(
                P.PROGRESS,
                job,
                stage=stage,
                step=0,
                total=total,
                message=event.message,
                **_count(state.spec),
            )
        if event.kind is J.PROGRESS:
            return self._progress(state, event.progress)
        if event.kind is J.DONE:
            results = event.results or (event.result,)
            return Deferred(job, lambda: self._result_message(state, results))
        if event.kind is J.CANCELLED:
            return error_message(P.CANCELLED, event.message or "cancelled", job=job)
        if state.decode_error is not None:  # an upload that is not a readable PNG after all
            return error_message(state.decode_error.code, state.decode_error.message, job=job)
        return error_message(FAILURE_CODES[event.failure], event.error or "", job=job)

    def _progress(self, state: _JobState, progress) -> Outgoing:
        job, index = state.spec.job, state.spec.preview_target
        fields = dict(
            stage="running",
            step=progress.step,
            total=progress.total,
            elapsed=round(progress.elapsed, 3),
            box=list(progress.box),
            **_count(state.spec),
        )
        if state.spec.listed:
            fields["preview_target"] = index
        now = time.monotonic()
        if (
            progress.step >= progress.total
            or now - state.last_preview < self.limits.preview_interval
        ):
            return P.Message(P.PROGRESS, job, **fields)
        state.last_preview = now

        def build() -> P.Message:
            preview = progress.preview(index)
            parts = {} if preview is None else {"preview": encode_png_array(preview)}
            return P.Message(P.PROGRESS, job, parts=parts, **fields)

        return Deferred(job, build, droppable=True)

    def _result_message(self, state: _JobState, results) -> P.Message:
        """One final ``result`` for the whole job: part ``image`` is the first target's image;
        an edit with ``targets`` also gets ``image.1``, ``image.2``, ... and the header's
        ``images`` naming the part of each target, in order. A final ``TOO_LARGE`` error
        instead when the PNGs together exceed ``max_payload`` (the pixel budget makes that
        rare: incompressible images at the budget's full size)."""
        spec = state.spec
        if len(results) != spec.count:
            raise RuntimeError(f"the engine returned {len(results)} results for {spec.count}")
        names = [P.result_part_name(i) for i in range(len(results))]
        parts = {name: encode_png_array(r.image) for name, r in zip(names, results, strict=True)}
        size = sum(len(data) for data in parts.values())
        if size > self.limits.max_payload:  # a frame the client would refuse (and disconnect)
            return error_message(
                P.TOO_LARGE,
                f"the edited image(s) are {size} bytes of PNG, over the frame limit of "
                f"{self.limits.max_payload}; send fewer targets per edit or a smaller image",
                job=spec.job,
            )
        listed = {"targets": list(spec.targets), "images": names} if spec.listed else {}
        result = results[0]
        return P.Message(
            P.RESULT,
            spec.job,
            parts=parts,
            **listed,
            offset=list(spec.offset),
            meta=spec.meta,
            width=int(result.image.shape[1]),
            height=int(result.image.shape[0]),
            box=[int(v) for v in result.box],
            elapsed=round(result.elapsed, 3),
            steps=result.steps,
            model=result.model_label,
        )


def _count(spec: EditSpec) -> dict[str, int]:
    """``count`` (the number of targets) for the messages of an edit sent with ``targets``."""
    return {"count": spec.count} if spec.listed else {}


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
