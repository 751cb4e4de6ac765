"""The bridge against hostile or careless local clients (issue 16, F1-F8 and the rest), all on
127.0.0.1 with bounded waits: handshake deadline and caps, an accept loop that survives
running out of descriptors, a client limit that cannot be raced, uploads kept compressed,
strict JSON, the right error codes, a final message per job on shutdown, deterministic
socket closing, the token file's format and permissions, rate-limited failure logs."""

from __future__ import annotations

import gc
import io
import logging
import os
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from bridge_helpers import FAST, png_bytes, rgba_image

from cds_desktop.bridge import BridgeServer, ClientSession, Deferred, ServerLimits, ensure_token
from cds_desktop.bridge.connection import DROP_PROGRESS_AT, Connection, Outbox
from cds_desktop.engine.jobs import JobQueue
from plugin_bridge import protocol as P
from plugin_bridge.client import BridgeClient, read_token

GUARD = 30.0
TOKEN = "c0ffee" * 10 + "c0de"  # 64 hex digits
REPO = Path(__file__).resolve().parents[2]
ON_LINUX = sys.platform.startswith("linux")


# ----------------------------------------------------------------------------- helpers
def raw_frame(body: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">IQ", len(body), len(payload)) + body + payload


def hello_frame(token: str = TOKEN) -> bytes:
    return P.encode_message(P.hello(token, "hardening"))


def exchange(port: int, data: bytes) -> list[P.Message]:
    """Send ``data`` after the handshake, half-close, and parse every reply until EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=GUARD) as sock:
        sock.sendall(P.encode_handshake() + data)
        sock.shutdown(socket.SHUT_WR)
        received = read_until_closed(sock)  # a reset (instead of EOF) fails the test
    stream = io.BytesIO(received)
    assert P.read_handshake(stream) == P.PROTOCOL_VERSION
    replies = []
    while stream.tell() < len(received):
        replies.append(P.read_message(stream))
    return replies


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def wait_until(condition, what: str, timeout: float = GUARD) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


@pytest.fixture
def tiny_queue(tiny_model):
    queue = JobQueue(loader=lambda spec, **kwargs: tiny_model)
    yield queue
    queue.shutdown()


@pytest.fixture
def make_server(tiny_queue):
    servers = []

    def make(**limits) -> BridgeServer:
        srv = BridgeServer(tiny_queue, port=0, token=TOKEN, limits=ServerLimits(**limits))
        servers.append(srv.start())
        return srv

    yield make
    for srv in servers:
        srv.stop()


# ----------------------------------------------------------------------------- F1
def test_f1_handshake_deadline_is_total_not_per_read(make_server):
    srv = make_server(handshake_timeout=1.0)
    data = P.encode_handshake() + hello_frame()
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=GUARD)
    start = time.monotonic()
    closed_after = None
    with sock:
        for byte in data:  # one byte every 0.2 s: each read is quick, the total is not
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - start
                break
            time.sleep(0.2)
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    closed_after = time.monotonic() - start
                    break
            if time.monotonic() - start > 6.0:
                break
    assert closed_after is not None and closed_after < 6.0, (
        "a client trickling one byte per 0.2 s was still connected after 6 s "
        "(the handshake deadline is 1 s in total)"
    )


def test_f1_unauthenticated_connections_are_capped_with_busy(make_server):
    srv = make_server(max_pending=3, handshake_timeout=GUARD)
    idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=GUARD) for _ in range(3)]
    try:
        wait_until(lambda: srv.connection_count == 3, "the server accepted 3 connections")
        replies = exchange(srv.port, hello_frame())
        assert len(replies) == 1 and replies[0]["code"] == P.BUSY and replies[0]["fatal"]
        assert "waiting to authenticate" in replies[0]["message"]
    finally:
        for sock in idle:
            sock.close()
    wait_until(lambda: srv.connection_count == 0, "the idle connections were closed")
    with BridgeClient(port=srv.port, token=TOKEN, timeout=GUARD) as client:
        assert client.ping() >= 0


EMFILE_SERVER = """
import os, resource, sys, logging
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
from cds_desktop.bridge import BridgeServer, ServerLimits
from cds_desktop.engine.jobs import JobQueue
limits = ServerLimits(handshake_timeout=1.0, max_pending=1000)
srv = BridgeServer(JobQueue(), port=0, token=sys.argv[1], limits=limits).start()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 6, hard))
print(srv.port, flush=True)
sys.stdin.read()
srv.stop()
"""


@pytest.mark.skipif(not ON_LINUX, reason="needs /proc and RLIMIT_NOFILE")
def test_f1_accept_loop_survives_running_out_of_descriptors():
    proc = subprocess.Popen(
        [sys.executable, "-c", EMFILE_SERVER, TOKEN],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        port = int(proc.stdout.readline())
        flood = [socket.create_connection(("127.0.0.1", port), timeout=GUARD) for _ in range(40)]
        time.sleep(1.0)  # the server runs out of descriptors; the handshake deadline frees them
        for sock in flood:
            sock.close()
        with BridgeClient(port=port, token=TOKEN, timeout=GUARD) as client:
            assert client.ping() >= 0, "the server stopped accepting after EMFILE"
        _, err = proc.communicate(input="", timeout=GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "accept failed" in err and "Too many open files" in err
    assert err.count("accept failed") <= 3, "accept failures must be logged once per episode"
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- F2
def test_f2_client_limit_holds_under_a_hello_race(make_server):
    srv = make_server(max_clients=4, max_pending=64)
    n = 40
    barrier = threading.Barrier(n)
    done = threading.Barrier(n + 1)
    outcomes: list[str] = []

    def hello() -> None:
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=GUARD) as sock:
                data = P.encode_handshake() + hello_frame()
                barrier.wait(GUARD)
                sock.sendall(data)
                stream = P.SocketStream(sock)
                P.read_handshake(stream)
                reply = P.read_message(stream)
                outcomes.append(reply.type if reply.type == P.WELCOME else reply["code"])
                done.wait(GUARD)  # hold the connection until every hello was answered
        except Exception as exc:  # noqa: BLE001
            outcomes.append(f"failed: {exc!r}")
            done.abort()

    threads = [threading.Thread(target=hello) for _ in range(n)]
    for t in threads:
        t.start()
    try:
        done.wait(GUARD * 2)
    except threading.BrokenBarrierError:
        pass
    for t in threads:
        t.join(GUARD)
    assert len(outcomes) == n and all(o in (P.WELCOME, P.BUSY) for o in outcomes), outcomes
    assert 1 <= outcomes.count(P.WELCOME) <= 4, f"{outcomes.count(P.WELCOME)} welcomed (max 4)"


# ----------------------------------------------------------------------------- F3
def test_f3_queued_uploads_stay_compressed_and_the_welcome_states_the_budget(make_server):
    srv = make_server(max_pixels=2048 * 2048)
    zeros = png_bytes(np.zeros((2048, 2048, 4), np.uint8))  # ~16 KB that decodes to 16 MB
    with BridgeClient(port=srv.port, token=TOKEN, timeout=GUARD) as client:
        limits = client.welcome["limits"]
        assert limits["max_pixels"] == 2048 * 2048
        assert limits["max_queued_bytes"] == ServerLimits().max_queued_bytes
        blocker = client.submit_edit(
            png_bytes(rgba_image(1)), "a", "b", settings={**FAST, "steps": 100_000}
        )
        for msg in client.events(blocker, timeout=GUARD):
            if msg.get("stage") == "running":
                break
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            jobs = [client.submit_edit(zeros, "a", "b", settings=FAST) for _ in range(6)]
            for job in jobs:
                assert next(client.events(job, timeout=GUARD)).type == P.QUEUED
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        for job in [blocker, *jobs]:
            client.cancel(job)
        for job in [blocker, *jobs]:
            assert list(client.events(job, timeout=GUARD))[-1]["code"] == P.CANCELLED
    assert grown < 16 * 2**20, f"6 queued uploads hold {grown / 2**20:.0f} MiB (decoded?)"


def test_f3_queued_bytes_are_capped_with_busy(make_server):
    image = png_bytes(rgba_image(3))
    srv = make_server(max_queued_bytes=2 * len(image))
    with BridgeClient(port=srv.port, token=TOKEN, timeout=GUARD) as client:
        slow = {**FAST, "steps": 100_000}
        jobs = [client.submit_edit(image, "a", "b", settings=slow)]
        for msg in client.events(jobs[0], timeout=GUARD):
            if msg.get("stage") == "running":
                break  # started: its upload no longer counts as queued
        jobs += [client.submit_edit(image, "a", "b", settings=slow) for _ in range(3)]
        finals = {}
        for job in jobs[1:]:
            first = next(client.events(job, timeout=GUARD))
            finals[job] = first.get("code") if first.type == P.ERROR else first.type
        assert list(finals.values()) == [P.QUEUED, P.QUEUED, P.BUSY], finals
        for job in jobs[:3]:
            client.cancel(job)
            assert list(client.events(job, timeout=GUARD))[-1]["code"] == P.CANCELLED


# ----------------------------------------------------------------------------- F5, F6, F7
@pytest.mark.parametrize(
    "body, fragment",
    [
        (b'{"type":"ping","job":null,"nonce":"\\ud800"}', "surrogate"),  # F5
        (b'{"type":"ping","job":null,"nonce":NaN}', "NaN"),  # F6
        (b'{"type":"ping","job":null,"nonce":-Infinity}', "Infinity"),  # F6
        (b'{"type":"edit","job":"j","source":"\\udfff","target":"b"}', "surrogate"),  # F7
    ],
)
def test_f5_f6_f7_non_json_values_are_bad_request_with_an_encodable_reply(
    make_server, body, fragment
):
    srv = make_server()
    replies = exchange(srv.port, hello_frame() + raw_frame(body))
    assert [r.type for r in replies] == [P.WELCOME, P.ERROR], replies
    assert replies[1]["code"] == P.BAD_REQUEST and fragment in replies[1]["message"]


def test_f5_huge_echoed_text_is_cut_and_the_connection_survives(make_server):
    srv = make_server()
    frames = hello_frame() + P.encode_message(P.Message("\\" * 30_000, "x"))
    frames += P.encode_message(P.ping("after"))
    frames += P.encode_message(P.ping("n" * 1000))  # a nonce too long to echo
    replies = exchange(srv.port, frames)
    assert [r.type for r in replies] == [P.WELCOME, P.ERROR, P.PONG, P.ERROR], replies
    assert replies[1]["code"] == P.BAD_REQUEST and not replies[1]["fatal"]
    assert len(replies[1]["message"]) < 2000
    assert replies[2]["nonce"] == "after"
    assert replies[3]["code"] == P.BAD_REQUEST and "nonce" in replies[3]["message"]


class _Gate:
    def __init__(self) -> None:
        self.send = None
        self.left = threading.Event()

    def authenticate(self, token, peer):
        return token == TOKEN

    def admit(self, conn):
        pass

    def welcome(self):
        return P.Message(P.WELCOME, None)

    def open_session(self, conn, send):
        self.send = send
        return ClientSession(send, lambda *args: None)

    def leave(self, conn):
        self.left.set()


def test_f5_a_reply_that_cannot_be_built_closes_with_an_internal_error():
    server_end, client_end = socket.socketpair()
    gate = _Gate()
    conn = Connection(server_end, ("pair", 0), gate, ServerLimits(handshake_timeout=GUARD))
    conn.start()
    client_end.settimeout(GUARD)
    client_end.sendall(P.encode_handshake() + hello_frame())
    stream = P.SocketStream(client_end)
    P.read_handshake(stream)
    assert P.read_message(stream).type == P.WELCOME

    def broken() -> P.Message:
        raise RuntimeError("preview failed")

    gate.send(Deferred("j", broken))
    reply = P.read_message(stream)
    assert reply.type == P.ERROR and reply["code"] == P.INTERNAL and reply["fatal"]
    assert read_until_closed(client_end) == b""
    assert gate.left.wait(GUARD)
    client_end.close()


@pytest.mark.parametrize(
    "first",
    [
        raw_frame(b'{"type":"hello","job":null,"token":"\\ud800"}'),  # F7: surrogate token
        raw_frame(b'{"type":"hello","job":null,"token":"x","client":NaN}'),  # F6
        P.encode_message(P.edit("j", png_bytes(rgba_image(0)), "a", "b")),  # F7: edit first
    ],
)
def test_f6_f7_anything_but_a_valid_hello_first_is_auth_failed(make_server, first):
    srv = make_server()
    replies = exchange(srv.port, first)
    assert len(replies) == 1 and replies[0]["code"] == P.AUTH_FAILED and replies[0]["fatal"]


def test_strict_parse_in_the_protocol_module():
    for bad in (b'{"type":"x","v":NaN}', b'{"type":"x","v":[Infinity]}', b'{"type":"\\udc00"}'):
        with pytest.raises(P.ProtocolError) as info:
            P.parse_header(bad)
        assert info.value.code == P.BAD_REQUEST
    with pytest.raises(ValueError):
        P.encode_header(P.Message(P.PONG, None, nonce=float("nan")))


# ----------------------------------------------------------------------------- F8
def test_f8_stop_sends_each_running_and_queued_job_one_cancelled(make_server):
    srv = make_server()
    with BridgeClient(port=srv.port, token=TOKEN, timeout=GUARD) as client:
        slow = {**FAST, "steps": 100_000}
        running = client.submit_edit(png_bytes(rgba_image(1)), "a", "b", settings=slow)
        queued = client.submit_edit(png_bytes(rgba_image(2)), "a", "b", settings=slow)
        for msg in client.events(running, timeout=GUARD):
            if msg.get("stage") == "running":
                break
        srv.stop()
        finals = {}
        try:
            while True:
                msg = client.poll(GUARD)
                if msg is None:
                    break
                if msg.is_final:
                    assert msg.job not in finals, f"two final messages for {msg.job}"
                    finals[msg.job] = msg
        except Exception:  # noqa: BLE001 - the connection closes after the last message
            pass
    assert set(finals) == {running, queued}, finals
    assert all(m["code"] == P.CANCELLED and "stopping" in m["message"] for m in finals.values())


def _serve(tmp_path: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "bridge" / "slow_serve.py"), mode, "--serve",
         "--port", "0", "--model", "tiny-random", "--device", "cpu"],
        stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "PYTHONPATH": str(REPO)},
    )  # fmt: skip


def _line(proc: subprocess.Popen, fragment: str, seen: list[str]) -> str:
    for line in proc.stderr:
        seen.append(line)
        if fragment in line:
            return line
    raise AssertionError(f"server exited before printing {fragment!r}:\n{''.join(seen)}")


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or not ON_LINUX, reason="POSIX signals")
@pytest.mark.parametrize("signals", [1, 2])
def test_f4_f8_sigterm_mid_step_cancels_every_job_and_exits_0(tmp_path, signals):
    proc = _serve(tmp_path, "slow-step")
    seen: list[str] = []
    try:
        port = int(_line(proc, "ready:", seen).rsplit("port ", 1)[1].split(";")[0])
        token = read_token(tmp_path / "cds-desktop" / "bridge-token")
        with BridgeClient(port=port, token=token, timeout=GUARD) as client:
            running = client.submit_edit(png_bytes(rgba_image(1)), "a", "b", settings=FAST)
            queued = client.submit_edit(png_bytes(rgba_image(2)), "a", "b", settings=FAST)
            for msg in client.events(running, timeout=GUARD):
                if msg.get("stage") == "started":
                    break
            time.sleep(0.5)  # inside the ten-minute step now
            for _ in range(signals):
                proc.send_signal(signal.SIGTERM)
                time.sleep(0.1)
            finals = {}
            with pytest.raises(Exception):  # noqa: B017 - ends when the server closes
                while True:
                    msg = client.poll(GUARD)
                    assert msg is not None, "no message and no close within the guard"
                    if msg.is_final:
                        assert msg.job not in finals, f"two final messages for {msg.job}"
                        finals[msg.job] = msg
        _, rest = proc.communicate(timeout=GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = "".join(seen) + rest
    assert proc.returncode == 0, log
    assert set(finals) == {running, queued}, finals
    assert all(m["code"] == P.CANCELLED for m in finals.values())
    assert "Traceback" not in log and "bridge stopped" in log


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or not ON_LINUX, reason="POSIX signals")
def test_f4_sigterm_while_the_model_loads_exits_0(tmp_path):
    proc = _serve(tmp_path, "slow-load")
    seen: list[str] = []
    try:
        _line(proc, "loading model", seen)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(seen) + rest
    assert "interrupted while loading" in rest and "Traceback" not in rest


# ----------------------------------------------------------------------------- the rest
def test_outbox_drops_progress_for_a_slow_reader_and_keeps_the_rest():
    box = Outbox(capacity=16)
    progress = P.Message(P.PROGRESS, "j", stage="running", step=1, total=9)
    for _ in range(1000):
        box.put(progress)
        box.put(Deferred("j", lambda: progress, droppable=True))
    assert len(box) <= DROP_PROGRESS_AT and box.dropped >= 1990
    for i in range(20):
        box.put(P.error(P.CANCELLED, str(i), job=str(i)))  # final messages are never dropped
    items = [box.get() for _ in range(len(box))]
    assert sum(1 for m in items if isinstance(m, P.Message) and m.type == P.ERROR) == 20
    box.put(progress)
    assert box.wait_for_room(0.01)


@pytest.mark.skipif(not ON_LINUX, reason="counts /proc/self/fd")
def test_sockets_are_closed_without_the_garbage_collector(make_server):
    srv = make_server()
    gc.collect()
    gc.disable()
    try:
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(5):
            with BridgeClient(port=srv.port, token=TOKEN, timeout=GUARD) as client:
                client.edit(png_bytes(rgba_image(4)), "a", "b", settings=FAST)
        wait_until(lambda: srv.connection_count == 0, "every connection ended")
        wait_until(
            lambda: len(os.listdir("/proc/self/fd")) <= before,
            f"descriptors back to {before} (now {len(os.listdir('/proc/self/fd'))})",
            timeout=5.0,
        )
    finally:
        gc.enable()


def test_malformed_token_file_is_replaced_with_64_hex_digits(tmp_path):
    path = tmp_path / "bridge-token"
    path.write_text("not-hex-but-longer-than-thirty-two-characters!!")
    token = ensure_token(path)
    assert len(token) == 64 and int(token, 16) >= 0
    assert path.read_text().strip() == token


def test_auth_failure_rechecks_permissions_and_is_logged_at_most_once(tiny_queue, tmp_path, caplog):
    path = tmp_path / "bridge-token"
    srv = BridgeServer(tiny_queue, port=0, token_file=path).start()
    try:
        path.chmod(0o644)  # someone loosened it while the server runs
        with caplog.at_level(logging.WARNING, logger="cds_desktop.bridge"):
            for _ in range(20):
                assert exchange(srv.port, hello_frame("0" * 64))[0]["code"] == P.AUTH_FAILED
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        failures = [r for r in caplog.records if "authentication fail" in r.getMessage()]
        assert len(failures) == 1, [r.getMessage() for r in failures]
        with BridgeClient(port=srv.port, token=read_token(path), timeout=GUARD) as client:
            assert client.ping() >= 0
    finally:
        srv.stop()


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or not ON_LINUX, reason="POSIX signals")
def test_f4_sigterm_while_starting_up_exits_0(tmp_path):
    """`cds-desktop --serve` takes seconds to import torch and load the model: a SIGTERM at
    any point of that ends it with status 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cds_desktop", "--serve", "--port", "0", "--model", "tiny-random",
         "--device", "cpu"],
        stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "Traceback" not in err, err
