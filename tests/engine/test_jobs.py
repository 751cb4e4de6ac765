"""The job queue: FIFO, events, cancel, failures that leave the worker alive."""

from __future__ import annotations

import threading

import numpy as np

from cds_desktop.engine import EditSettings
from cds_desktop.engine.jobs import CANCELLED, DONE, FAILED, PROGRESS, QUEUED, EditRequest, JobQueue

FAST = EditSettings(steps=2, working_size=32)


def _request(**kw):
    img = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    base = dict(
        image=img, source_prompt="a cat", target_prompt="a pig", settings=FAST, model="tiny-random"
    )
    return EditRequest(**(base | kw))


def _queue(tiny_model):
    return JobQueue(loader=lambda spec, **kw: tiny_model if spec == "tiny-random" else _fail(spec))


def _fail(spec):
    from cds_desktop.engine.errors import ModelError

    raise ModelError(f"model {spec!r} not found")


def test_fifo_order_events_and_results(tiny_model):
    q = _queue(tiny_model)
    order, lock = [], threading.Lock()

    def listener(ev):
        with lock:
            order.append((ev.job_id, ev.kind))

    try:
        jobs = [q.submit(_request(), listener) for _ in range(3)]
        assert all(j.wait(120) for j in jobs)
        assert [j.state for j in jobs] == [DONE] * 3
        finished = [jid for jid, kind in order if kind == DONE]
        assert finished == [j.id for j in jobs]
        kinds = [k for jid, k in order if jid == jobs[0].id]
        assert kinds[0] is QUEUED and kinds[-1] == DONE and PROGRESS in kinds
        assert jobs[0].result.image.shape == (24, 32, 4)
    finally:
        q.shutdown()


def test_cancel_queued_job_and_failure_keep_worker_alive(tiny_model):
    q = _queue(tiny_model)
    try:
        bad = q.submit(_request(model="missing-model"))
        queued = q.submit(_request(settings=FAST.replace(steps=50)))
        queued.cancel()
        good = q.submit(_request())
        assert bad.wait(60) and queued.wait(60) and good.wait(120)
        assert bad.state == FAILED and "not found" in bad.error
        assert queued.state == CANCELLED
        assert good.state == DONE
    finally:
        q.shutdown()


def test_shutdown_stops_the_worker(tiny_model):
    q = _queue(tiny_model)
    job = q.submit(_request(settings=FAST.replace(steps=10_000)))
    q.shutdown(wait=True, timeout=60)
    assert job.wait(1) and job.state == CANCELLED
    assert not q._thread.is_alive()


def test_failures_carry_their_kind(tiny_model):
    """The failure kind (not the message text) tells callers what went wrong."""
    from cds_desktop.engine.jobs import FailureKind

    events = []

    def listener(ev):
        if ev.kind is FAILED:
            events.append(ev)

    def loader(spec, **kw):
        if spec == "boom":
            raise RuntimeError("driver exploded")
        return tiny_model if spec == "tiny-random" else _fail(spec)

    q = JobQueue(loader=loader)
    try:
        jobs = [
            q.submit(_request(model="missing-model"), listener),
            q.submit(_request(target_prompt="  "), listener),
            q.submit(_request(model="boom"), listener),
        ]
        assert all(j.wait(120) for j in jobs)
        kinds = [ev.failure for ev in sorted(events, key=lambda ev: ev.job_id)]
        assert kinds == [FailureKind.MODEL, FailureKind.USER_INPUT, FailureKind.INTERNAL]
        assert events[-1].error.startswith("internal error")
    finally:
        q.shutdown()


def test_observers_see_every_job_from_every_submitter(tiny_model):
    q = _queue(tiny_model)
    seen, lock = [], threading.Lock()

    def observer(job, event):
        with lock:
            seen.append((job.id, job.request.origin, event.kind))

    def broken(job, event):
        raise RuntimeError("a broken observer must not stop the queue")

    q.add_observer(broken)
    q.add_observer(observer)
    try:
        a = q.submit(_request(origin="app"), lambda ev: None)
        b = q.submit(_request(origin="cds-gimp"))  # no listener of its own
        assert a.wait(120) and b.wait(120)
        assert q.jobs() == []
        q.remove_observer(observer)
        c = q.submit(_request())
        assert c.wait(120)
    finally:
        q.shutdown()
    for job, origin in ((a, "app"), (b, "cds-gimp")):
        kinds = [k for jid, o, k in seen if jid == job.id and o == origin]
        assert kinds[0] is QUEUED and kinds[-1] is DONE and PROGRESS in kinds
    assert not [k for jid, _, k in seen if jid == c.id]
    assert a.result is not None and b.result is not None


def test_prepare_runs_on_the_worker_when_the_job_starts(tiny_model):
    from cds_desktop.engine import EditError
    from cds_desktop.engine.jobs import FailureKind

    q = _queue(tiny_model)
    calls = []
    events = []

    def prepare(request):
        calls.append(threading.current_thread().name)
        return EditRequest(**{**request.__dict__, "image": _request().image})

    def refuse(request):
        raise EditError("image: not a readable PNG")

    try:
        placeholder = np.empty((0, 0, 4), np.uint8)
        job = q.submit(_request(image=placeholder), prepare=prepare)
        assert job.wait(120) and job.state == DONE and job.result.image.shape == (24, 32, 4)
        assert calls == ["cds-job-worker"]
        failed = q.submit(_request(image=placeholder), events.append, prepare=refuse)
        assert failed.wait(120) and failed.state == FAILED
        assert events[-1].failure is FailureKind.USER_INPUT and "PNG" in events[-1].error
        blocker = q.submit(_request(settings=FAST.replace(steps=100_000)))
        never = q.submit(_request(image=placeholder), prepare=prepare)
        never.cancel()
        blocker.cancel()
        assert never.wait(120) and never.state == CANCELLED and calls == ["cds-job-worker"]
    finally:
        q.shutdown()


def test_several_targets_run_as_one_job_with_one_result_each(tiny_model):
    q = _queue(tiny_model)
    events = []
    try:
        request = _request(extra_targets=("a cow", "a dog"))
        assert request.target_prompts == ("a pig", "a cow", "a dog")
        job = q.submit(request, events.append)
        assert job.wait(120) and job.state == DONE
        done = [e for e in events if e.kind == DONE]
        assert len(done) == 1, "K targets are one job with one DONE event"
        results = done[0].results
        assert [r.target_prompt for r in results] == ["a pig", "a cow", "a dog"]
        assert done[0].result is results[0] and job.results == results
        progress = [e.progress for e in events if e.kind is PROGRESS]
        assert [p.step for p in progress] == [1, 2] and all(p.count == 3 for p in progress)
        single = q.submit(_request(target_prompt="a cow"))
        assert single.wait(120) and single.state == DONE
        assert np.abs(single.result.image.astype(int) - results[1].image.astype(int)).max() <= 1
    finally:
        q.shutdown()


def test_cancel_stops_every_target(tiny_model):
    q = _queue(tiny_model)
    started = threading.Event()
    try:
        job = q.submit(
            _request(extra_targets=("a cow",), settings=FAST.replace(steps=10_000)),
            lambda e: started.set() if e.kind is PROGRESS else None,
        )
        assert started.wait(60)
        job.cancel()
        assert job.wait(60) and job.state == CANCELLED and job.results == ()
    finally:
        q.shutdown()
