"""ClientSession without sockets: requests in, messages out into a list (the way
python-lsp-jsonrpc tests its Endpoint), engine events driven by hand through a fake queue."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from bridge_helpers import FAST, box_mask, png_bytes, rgba_image

from cds_desktop.bridge import ClientSession, Deferred, ServerLimits
from cds_desktop.bridge.requests import ModelChoice
from cds_desktop.engine import EditError
from cds_desktop.engine import jobs as J
from plugin_bridge import protocol as P


class FakeQueue:
    """Records submissions; the test emits the engine events itself."""

    def __init__(self) -> None:
        self.submitted: list[tuple[J.EditRequest, J.Listener, J.Job]] = []
        self.prepares: list[J.Prepare] = []

    def submit(self, request: J.EditRequest, listener: J.Listener, prepare=None) -> J.Job:
        job = J.Job(len(self.submitted) + 1, request, listener, prepare)
        self.submitted.append((request, listener, job))
        self.prepares.append(prepare)
        job._emit(J.JobEvent(job.id, J.QUEUED, message="queued (position 1)", position=1))
        return job


def make_session(**limits) -> tuple[ClientSession, list, FakeQueue]:
    sent: list = []
    queue = FakeQueue()
    session = ClientSession(
        sent.append,
        queue.submit,
        limits=ServerLimits(**limits),
        choice=lambda: ModelChoice("tiny-random", "cpu"),
        queue_length=lambda: len(queue.submitted),
        name="test",
        tag=7,
    )
    return session, sent, queue


def resolved(item) -> P.Message:
    return item.build() if isinstance(item, Deferred) else item


def edit_message(job: str = "j1", **fields) -> P.Message:
    msg = P.edit(
        job,
        png_bytes(rgba_image(1)),
        "a cat",
        "a dog",
        mask_png=png_bytes(box_mask(2, 2, 10, 10)),
        settings=FAST,
        meta={"layer": "L"},
        offset=(5, 6),
    )
    msg.update(fields)
    return msg


def test_edit_becomes_an_engine_request_and_a_queued_message():
    session, sent, queue = make_session()
    session.handle(edit_message())
    request, _, _ = queue.submitted[0]
    assert request.source_prompt == "a cat" and request.target_prompt == "a dog"
    assert request.model == "tiny-random" and request.device == "cpu"
    assert request.settings.steps == FAST["steps"] and request.tag == ("bridge", 7, "j1")
    assert request.image.size == 0 and request.mask is None, "decoded while still queued"
    assert [m.type for m in sent] == [P.QUEUED] and sent[0].job == "j1"
    assert session.active_jobs == 1
    assert session.budget.used > 0  # the compressed upload counts against the queue budget
    started = queue.prepares[0](request)  # the worker calls this when the job starts
    assert started.image.shape == (24, 32, 4) and started.mask.shape == (24, 32)
    assert started.source_prompt == "a cat" and session.budget.used == 0


def test_queued_upload_bytes_are_capped_with_busy():
    one = len(edit_message().parts["image"]) + len(edit_message().parts["mask"])
    session, sent, queue = make_session(max_queued_bytes=2 * one)
    for job in ("a", "b", "c"):
        session.handle(edit_message(job))
    assert len(queue.submitted) == 2
    assert sent[-1].type == P.ERROR and sent[-1]["code"] == P.BUSY and sent[-1].job == "c"
    assert "MiB" in sent[-1]["message"] and not sent[-1]["fatal"]
    _, listener, job = queue.submitted[0]
    listener(J.JobEvent(job.id, J.CANCELLED, message="cancelled"))  # frees its bytes
    session.handle(edit_message("c"))
    assert len(queue.submitted) == 3


def test_an_upload_that_fails_to_decode_at_start_is_bad_request():
    session, sent, queue = make_session()
    msg = edit_message()
    msg.parts["image"] = msg.parts["image"][:60]  # header intact, pixel data cut off
    session.handle(msg)
    request, listener, job = queue.submitted[0]
    with pytest.raises(EditError, match="image: not a readable PNG"):
        queue.prepares[0](request)
    listener(J.JobEvent(job.id, J.FAILED, error="x", failure=J.FailureKind.USER_INPUT))
    assert sent[-1]["code"] == P.BAD_REQUEST and "image" in sent[-1]["message"]


def test_ping_answers_with_the_nonce_and_queue_length():
    session, sent, _ = make_session()
    session.handle(P.ping("n-1"))
    assert sent == [P.Message(P.PONG, None, nonce="n-1", queue=0)]


def test_done_event_is_a_deferred_result_with_offset_and_meta():
    session, sent, queue = make_session()
    session.handle(edit_message())
    _, listener, job = queue.submitted[0]
    image = rgba_image(2)
    result = SimpleNamespace(
        image=image, box=(1, 2, 3, 4), elapsed=0.5, steps=2, model_label="tiny"
    )
    listener(J.JobEvent(job.id, J.DONE, result=result))
    final = sent[-1]
    assert isinstance(final, Deferred), "PNG encoding must happen on the writer thread"
    msg = final.build()
    assert msg.type == P.RESULT and msg["offset"] == [5, 6] and msg["meta"] == {"layer": "L"}
    assert (msg["width"], msg["height"]) == (32, 24) and msg["box"] == [1, 2, 3, 4]
    assert msg.parts["image"].startswith(b"\x89PNG")
    assert session.active_jobs == 0


@pytest.mark.parametrize(
    "failure, code",
    [
        (J.FailureKind.USER_INPUT, P.EDIT_FAILED),
        (J.FailureKind.MODEL, P.MODEL_ERROR),
        (J.FailureKind.INTERNAL, P.INTERNAL),
        (None, P.INTERNAL),
    ],
)
def test_failure_kind_maps_to_the_protocol_code(failure, code):
    session, sent, queue = make_session()
    session.handle(edit_message())
    _, listener, job = queue.submitted[0]
    listener(J.JobEvent(job.id, J.FAILED, error="it broke", failure=failure))
    final = resolved(sent[-1])
    assert final.type == P.ERROR and final["code"] == code and final["message"] == "it broke"
    assert final.job == "j1" and not final["fatal"]


def test_end_all_sends_one_cancelled_per_job_and_suppresses_later_events():
    session, sent, queue = make_session()
    session.handle(edit_message("a"))
    session.handle(edit_message("b"))
    session.end_all("the server is stopping")
    assert all(job.cancel_requested for _, _, job in queue.submitted)
    for _, listener, job in queue.submitted:  # the engine's own final events come later
        listener(J.JobEvent(job.id, J.CANCELLED, message="cancelled"))
    finals = [resolved(m) for m in sent if resolved(m).is_final]
    assert sorted(m.job for m in finals) == ["a", "b"]
    assert all(m["code"] == P.CANCELLED and "stopping" in m["message"] for m in finals)
    session.handle(edit_message("c"))
    assert resolved(sent[-1])["code"] == P.BUSY


def test_progress_previews_are_droppable_and_rate_limited():
    session, sent, queue = make_session(preview_interval=3600.0)
    session.handle(edit_message())
    _, listener, job = queue.submitted[0]
    preview = np.zeros((4, 4, 4), np.uint8)
    for step in (1, 2):
        progress = SimpleNamespace(
            step=step, total=5, elapsed=0.1, box=(0, 0, 4, 4), preview=lambda index=0: preview
        )
        listener(J.JobEvent(job.id, J.PROGRESS, progress=progress))
    first, second = sent[-2], sent[-1]
    assert isinstance(first, Deferred) and first.droppable
    assert "preview" in first.build().parts
    assert isinstance(second, P.Message) and not second.parts  # within the interval


def test_request_errors_name_the_field_and_keep_the_session():
    session, sent, queue = make_session()
    session.handle(edit_message(source=""))
    session.handle(P.Message("frobnicate" * 100, "x"))
    assert [m["code"] for m in sent] == [P.BAD_REQUEST, P.BAD_REQUEST]
    assert "source" in sent[0]["message"]
    assert len(sent[1]["message"]) < 200  # the echoed type is shortened
    assert not queue.submitted
