"""The bridge server end to end on a free port with the tiny random model: auth, rejection
of non-protocol clients, concurrent clients, cancel-on-disconnect, validation, token file."""

from __future__ import annotations

import os
import socket
import stat
import threading
import time

import numpy as np
import platformdirs
import pytest
from bridge_helpers import FAST, box_mask, png_array, png_bytes, rgba_image

from cds_desktop import bridge as bs
from cds_desktop.engine.errors import ModelError
from cds_desktop.engine.jobs import EventKind, JobQueue
from plugin_bridge import protocol as P
from plugin_bridge.client import BridgeClient, BridgeError, read_token, token_path

GUARD = 60.0  # generous upper bound so a broken server fails instead of hanging


def raw_connection(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=GUARD)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def client_for(server, **kwargs) -> BridgeClient:
    return BridgeClient(port=server.port, timeout=GUARD, **kwargs)


# ----------------------------------------------------------------------------- token file
def test_token_file_is_private_random_and_reused(server, config_home):
    path = token_path()
    assert path == config_home / "cds-desktop" / "bridge-token"
    assert str(path) == os.path.join(platformdirs.user_config_dir("cds-desktop"), "bridge-token")
    assert server.token_file == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = read_token()
    assert len(token) == 64 and int(token, 16) >= 0
    assert bs.ensure_token(path) == token  # an existing token is kept
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".bridge-token")]


def test_new_token_created_atomically_with_0600(tmp_path):
    path = tmp_path / "conf" / "bridge-token"
    first = bs.ensure_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == first
    other = bs.ensure_token(tmp_path / "elsewhere" / "bridge-token")
    assert other != first  # random, not a constant


def test_world_readable_token_is_tightened(tmp_path):
    path = tmp_path / "bridge-token"
    path.write_text("a" * 64)
    path.chmod(0o644)
    assert bs.ensure_token(path) == "a" * 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# ----------------------------------------------------------------------------- rejection
def test_wrong_token_gets_auth_failed_and_server_keeps_serving(server):
    with pytest.raises(BridgeError) as info:
        client_for(server, token="0" * 64).connect()
    assert info.value.code == P.AUTH_FAILED
    with client_for(server) as client:
        assert client.ping() >= 0


def test_frame_before_hello_is_auth_failed(server):
    sock = raw_connection(server.port)
    sock.sendall(P.encode_handshake() + P.encode_message(P.ping()))
    data = read_until_closed(sock)
    assert data[:6] == P.encode_handshake()
    import io

    reply = P.read_message(io.BytesIO(data[6:]))
    assert reply.type == P.ERROR and reply["code"] == P.AUTH_FAILED and reply["fatal"]


def test_http_request_is_closed_without_a_reply(server):
    sock = raw_connection(server.port)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert read_until_closed(sock) == b""


def test_unsupported_version_is_refused(server):
    sock = raw_connection(server.port)
    sock.sendall(P.encode_handshake(99))
    data = read_until_closed(sock)
    import io

    stream = io.BytesIO(data)
    assert P.read_handshake(stream) == P.PROTOCOL_VERSION
    assert P.read_message(stream)["code"] == P.UNSUPPORTED_VERSION


def test_remote_host_needs_allow_remote(job_queue, caplog):
    with pytest.raises(bs.BridgeServerError, match="allow-remote"):
        bs.BridgeServer(job_queue, host="0.0.0.0", port=0, token="t" * 64)
    with caplog.at_level("WARNING", logger="cds_desktop.bridge"):
        bs.BridgeServer(job_queue, host="0.0.0.0", port=0, token="t" * 64, allow_remote=True)
    assert "NOT encrypted" in caplog.text


def test_port_in_use_is_a_one_line_error(server, job_queue):
    other = bs.BridgeServer(job_queue, port=server.port, token="t" * 64)
    with pytest.raises(bs.BridgeServerError, match=f"port {server.port} .* in use"):
        other.start()


# ----------------------------------------------------------------------------- edits
def _submit(client: BridgeClient, seed: int, box: tuple, offset: tuple, **settings):
    img = rgba_image(seed)
    mask = box_mask(*box)
    job = client.submit_edit(
        png_bytes(img),
        "a photo",
        "a painting",
        mask_png=png_bytes(mask),
        settings={**FAST, "seed": seed, **settings},
        meta={"layer": f"layer {seed}", "n": seed},
        offset=offset,
    )
    return job, img, mask


def _check_result(result: P.Message, img: np.ndarray, mask: np.ndarray, seed: int, offset):
    assert result.type == P.RESULT, result
    out = png_array(result.parts["image"])
    assert out.shape == img.shape and out.dtype == np.uint8
    outside = mask == 0
    assert np.array_equal(out[outside], img[outside]), "pixels outside the mask changed"
    assert np.array_equal(out[..., 3], img[..., 3]), "alpha changed"
    assert (out[~outside][:, :3] != img[~outside][:, :3]).any(), "nothing was edited"
    assert result["offset"] == list(offset)
    assert result["meta"] == {"layer": f"layer {seed}", "n": seed}
    assert (result["width"], result["height"]) == (32, 24)
    assert result["steps"] == FAST["steps"] and result["elapsed"] >= 0


def test_three_concurrent_clients_get_their_own_results(server):
    boxes = [(2, 2, 12, 10), (16, 4, 30, 14), (6, 12, 20, 22)]
    results: dict[int, tuple] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            with client_for(server, client_name=f"test-{i}") as client:
                job, img, mask = _submit(client, 10 + i, boxes[i], (i * 100, -i))
                kinds = []
                for msg in client.events(job, timeout=GUARD):
                    kinds.append(msg.type)
                results[i] = (msg, img, mask, kinds)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(GUARD * 2)
    assert not errors, errors
    for i in range(3):
        msg, img, mask, kinds = results[i]
        _check_result(msg, img, mask, 10 + i, (i * 100, -i))
        assert kinds[0] == P.QUEUED and P.PROGRESS in kinds and kinds[-1] == P.RESULT


def test_progress_carries_steps_and_a_preview(server):
    with client_for(server) as client:
        job, img, mask = _submit(client, 3, (4, 4, 20, 20), (0, 0))
        messages = list(client.events(job, timeout=GUARD))
    running = [m for m in messages if m.get("stage") == "running"]
    assert [m["step"] for m in running] == [1, 2]
    assert all(m["total"] == 2 for m in running)
    previews = [m.parts["preview"] for m in running if "preview" in m.parts]
    assert previews, "the first step must carry a preview"
    assert png_array(previews[0]).ndim == 3


def test_disconnect_mid_job_cancels_it_and_frees_the_worker(server, job_queue, monkeypatch):
    submitted = []
    real_submit = job_queue.submit

    def recording_submit(request, listener=None, prepare=None):
        job = real_submit(request, listener, prepare)
        submitted.append(job)
        return job

    monkeypatch.setattr(job_queue, "submit", recording_submit)
    client = client_for(server)
    client.connect()
    job, _, _ = _submit(client, 5, (0, 0, 32, 24), (0, 0), steps=100_000)
    for msg in client.events(job, timeout=GUARD):
        if msg.get("stage") == "running":
            break
    client.close()
    assert submitted[0].wait(GUARD), "the abandoned job was not stopped"
    assert submitted[0].state is EventKind.CANCELLED
    with client_for(server) as client:
        job, img, mask = _submit(client, 6, (4, 4, 12, 12), (1, 2))
        result = list(client.events(job, timeout=GUARD))[-1]
    _check_result(result, img, mask, 6, (1, 2))


def test_cancel_message_ends_the_job_with_cancelled(server):
    with client_for(server) as client:
        job, _, _ = _submit(client, 7, (0, 0, 32, 24), (0, 0), steps=100_000)
        for msg in client.events(job, timeout=GUARD):
            if msg.get("stage") == "running":
                client.cancel(job)
        assert msg.type == P.ERROR and msg["code"] == P.CANCELLED
        assert client.ping() >= 0  # connection still usable


@pytest.mark.parametrize(
    "change, code, fragment",
    [
        ({"settings": {"steps": 0}}, P.BAD_REQUEST, "steps"),
        ({"settings": {"stpes": 3}}, P.BAD_REQUEST, "stpes"),
        ({"settings": {"mode": "sdc"}}, P.BAD_REQUEST, "mode"),
        ({"settings": {"patch_sizes": 5}}, P.BAD_REQUEST, "settings"),
        ({"settings": [1]}, P.BAD_REQUEST, "settings"),
        ({"source": "  "}, P.BAD_REQUEST, "source"),
        ({"target": 3}, P.BAD_REQUEST, "target"),
        ({"offset": [1]}, P.BAD_REQUEST, "offset"),
        ({"meta": "x"}, P.BAD_REQUEST, "meta"),
        ({"meta": {"k": "x" * 20000}}, P.BAD_REQUEST, "meta is"),
        ({"parts": {"image": b"not a png"}}, P.BAD_REQUEST, "image"),
        ({"parts": {}}, P.BAD_REQUEST, "image"),
        ({"parts": {"mask": png_bytes(box_mask(0, 0, 4, 4, 8, 8))}}, P.BAD_REQUEST, "mask is 8x8"),
        ({"parts": {"extra": b""}}, P.BAD_REQUEST, "extra"),
        ({"parts": {"image": png_bytes(rgba_image(0, 80, 80))}}, P.TOO_LARGE, "6400"),
        ({"parts": {"mask": png_bytes(box_mask(0, 0, 0, 0))}}, P.EDIT_FAILED, "mask is empty"),
    ],
)
def test_invalid_edits_get_an_error_naming_the_problem(server, change, code, fragment):
    msg = P.edit("bad-1", png_bytes(rgba_image(1)), "a", "b", settings=FAST)
    parts = change.pop("parts", None)
    msg.update(change)
    if parts is not None:
        msg.parts = {**msg.parts, **parts} if parts else {}
    with client_for(server) as client:
        client._send(msg)
        final = list(client.events("bad-1", timeout=GUARD))[-1]
        assert final.type == P.ERROR and final["code"] == code, final
        assert fragment in final["message"]
        assert not final["fatal"]
        assert client.ping() >= 0  # the connection survives a bad request


def test_unknown_message_type_and_duplicate_job_id(server):
    with client_for(server) as client:
        client._send(P.Message("frobnicate", "x1"))
        reply = client.poll(GUARD)
        assert reply["code"] == P.BAD_REQUEST and reply.job == "x1"
        long_job = P.edit("dup", png_bytes(rgba_image(2)), "a", "b", settings={"steps": 100_000})
        client._send(long_job)
        client._send(P.edit("dup", png_bytes(rgba_image(2)), "a", "b", settings=FAST))
        dup_error = None
        for _ in range(20):
            msg = client.poll(GUARD)
            if msg.type == P.ERROR and msg.job is None:
                dup_error = msg
                break
        assert dup_error is not None and "already in use" in dup_error["message"]
        client.cancel("dup")
        assert list(client.events("dup", timeout=GUARD))[-1]["code"] == P.CANCELLED


def test_status_reports_clients(server):
    seen = []
    assert server.status().running and server.status().port == server.port
    with client_for(server):
        deadline = time.monotonic() + GUARD
        while server.client_count < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(server.status().clients)
    assert seen[0] >= 1


def test_stop_closes_clients_and_reports_not_running(job_queue):
    statuses = []
    before = set(threading.enumerate())
    srv = bs.BridgeServer(job_queue, port=0, token="s" * 64, on_status=statuses.append).start()
    client = BridgeClient(port=srv.port, token="s" * 64, timeout=GUARD)
    client.connect()
    half_open = socket.create_connection(("127.0.0.1", srv.port), timeout=GUARD)  # no handshake
    deadline = time.monotonic() + GUARD
    while srv.connection_count < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # until the server has accepted it (not just queued in the backlog)
    srv.stop()
    assert not srv.running and srv.port is None
    assert half_open.recv(10) == b""  # closed by stop(), not left to the handshake timeout
    leaked = [t for t in set(threading.enumerate()) - before if t.name.startswith("bridge-")]
    assert not leaked, leaked
    assert statuses[0].running and not statuses[-1].running
    with pytest.raises(BridgeError) as info:
        client.ping()  # notices the closed connection, tries to reconnect, finds no server
    assert info.value.code == "NOT_RUNNING" and "cds-desktop --serve" in str(info.value)


def test_idle_connection_times_out_and_the_client_reconnects(job_queue):
    limits = bs.ServerLimits(idle_timeout=0.2)
    with bs.BridgeServer(job_queue, port=0, token="i" * 64, limits=limits) as srv:
        with BridgeClient(port=srv.port, token="i" * 64, timeout=GUARD) as client:
            with pytest.raises(BridgeError) as info:
                client.poll(GUARD)  # the server's fatal TIMEOUT arrives
            assert info.value.code == P.TIMEOUT and not client.connected
            assert client.ping() >= 0  # a new request reconnects
        with BridgeClient(port=srv.port, token="i" * 64, timeout=GUARD) as client:
            deadline = time.monotonic() + GUARD
            while srv.client_count and time.monotonic() < deadline:
                time.sleep(0.05)  # wait until the server dropped the idle client
            assert srv.client_count == 0
            assert client.ping() >= 0  # dropped silently, reconnected transparently


def test_queue_observers_see_which_plug_in_submitted_a_job(server, job_queue):
    seen = []

    def observer(job, event):
        if event.kind is EventKind.QUEUED:
            seen.append(job.request.origin)

    job_queue.add_observer(observer)
    try:
        with client_for(server, client_name="cds-krita") as client:
            job, _, _ = _submit(client, 4, (4, 4, 20, 20), (0, 0))
            messages = list(client.events(job, timeout=GUARD))
    finally:
        job_queue.remove_observer(observer)
    assert messages[-1].type == P.RESULT
    assert seen == ["cds-krita"]


# ----------------------------------------------------------------------------- engine failures
def _failing_queue(exc: BaseException) -> JobQueue:
    def loader(spec, **kwargs):
        raise exc

    return JobQueue(loader=loader)


@pytest.mark.parametrize(
    "exc, code, fragment",
    [
        (ModelError("model 'x' is not on this computer"), P.MODEL_ERROR, "not on this computer"),
        (RuntimeError("boom"), P.INTERNAL, "internal error (RuntimeError: boom)"),
    ],
)
def test_engine_failures_reach_the_client_with_their_code(exc, code, fragment):
    queue = _failing_queue(exc)
    try:
        with bs.BridgeServer(queue, port=0, token="f" * 64) as srv:
            with BridgeClient(port=srv.port, token="f" * 64, timeout=GUARD) as client:
                job = client.submit_edit(png_bytes(rgba_image(1)), "a", "b", settings=FAST)
                final = list(client.events(job, timeout=GUARD))[-1]
                assert final.type == P.ERROR and final["code"] == code, final
                assert fragment in final["message"] and not final["fatal"]
                assert client.ping() >= 0  # the connection survives a failed job
    finally:
        queue.shutdown()
