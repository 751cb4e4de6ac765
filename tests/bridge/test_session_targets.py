"""ClientSession with several targets, without sockets: the engine request it submits, the
result it builds from K engine results, and the model defaults it leaves to the worker."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from bridge_helpers import FAST, png_array, png_bytes, rgba_image

from cds_desktop.bridge import ClientSession, Deferred, ServerLimits
from cds_desktop.bridge.requests import ModelChoice
from cds_desktop.engine import jobs as J
from plugin_bridge import protocol as P


def make_session(**limits):
    sent, submitted = [], []

    def submit(request, listener, prepare=None):
        job = J.Job(len(submitted) + 1, request, listener, prepare)
        submitted.append((request, listener, job))
        return job

    session = ClientSession(
        sent.append, submit, limits=ServerLimits(**limits), choice=lambda: ModelChoice("m")
    )
    return session, sent, submitted


def resolved(item) -> P.Message:
    return item.build() if isinstance(item, Deferred) else item


def fake_result(value: int) -> SimpleNamespace:
    image = np.full((24, 32, 4), value, np.uint8)
    return SimpleNamespace(image=image, box=(0, 0, 32, 24), elapsed=1.0, steps=2, model_label="m")


def test_targets_become_one_request_with_extra_targets():
    session, sent, submitted = make_session()
    session.handle(P.edit("j", png_bytes(rgba_image(1)), "a cat", ["a pig", "a cow"], None, FAST))
    (request, _, _), = submitted  # fmt: skip
    assert request.target_prompt == "a pig" and request.extra_targets == ("a cow",)
    assert request.target_prompts == ("a pig", "a cow")


def test_guidance_is_left_to_the_model_only_when_not_sent():
    session, _, submitted = make_session()
    session.handle(P.edit("a", png_bytes(rgba_image(1)), "s", "t", None, FAST))
    session.handle(P.edit("b", png_bytes(rgba_image(1)), "s", "t", None,
                          {**FAST, "guidance_scale": 7.5}))  # fmt: skip
    unset, chosen = (request for request, _, _ in submitted)
    assert unset.model_defaults == frozenset({"guidance_scale"})
    assert chosen.model_defaults == frozenset() and chosen.settings.guidance_scale == 7.5


def test_k_engine_results_become_one_result_with_k_named_images():
    session, sent, submitted = make_session()
    session.handle(P.edit("j", png_bytes(rgba_image(1)), "s", ["a", "b", "c"], None, FAST))
    _, listener, job = submitted[0]
    results = tuple(fake_result(v) for v in (10, 20, 30))
    listener(J.JobEvent(job.id, J.DONE, result=results[0], results=results))
    final = resolved(sent[-1])
    assert final.type == P.RESULT and final["images"] == ["image", "image.1", "image.2"]
    assert final["targets"] == ["a", "b", "c"]
    values = [int(png_array(data)[0, 0, 0]) for data in P.result_images(final)]
    assert values == [10, 20, 30], "images out of target order"
    assert session.active_jobs == 0


def test_results_over_the_frame_limit_end_the_job_with_too_large():
    session, sent, submitted = make_session(max_payload=2000)
    session.handle(P.edit("j", png_bytes(rgba_image(1)), "s", ["a", "b", "c"], None, FAST))
    _, listener, job = submitted[0]
    noisy = [SimpleNamespace(**{**vars(fake_result(0)), "image": rgba_image(i)}) for i in range(3)]
    listener(J.JobEvent(job.id, J.DONE, result=noisy[0], results=tuple(noisy)))
    finals = [m for m in map(resolved, sent) if m.is_final]
    assert len(finals) == 1 and finals[0]["code"] == P.TOO_LARGE, finals
    assert "fewer targets" in finals[0]["message"] and not finals[0]["fatal"]
