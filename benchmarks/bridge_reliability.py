"""Soak and fuzz of the plug-in bridge, as a hostile or careless local client would (127.0.0.1).

Starts ``cds-desktop --serve --model tiny-random --device cpu`` as a child process (a fresh
token in a temporary config folder, its log in a file) and measures it from outside:

  fuzz    N mutated frames (default 10,000) over thousands of connections: every reply must be
          well-formed strict protocol (parseable, strict JSON, a known code, never INTERNAL) and
          the server must stay up (a client pings it every 500 frames)
  soak    300 edits, each on a new connection: server RSS, threads and open descriptors at the
          start and after every 100
  burst   16 clients at once (all welcomed) and a 17th (refused with BUSY: time to refusal);
          40 simultaneous hellos, 5 times: how many were welcomed (the limit is 16)
  bombs   16 clients x 8 jobs: one running job and 127 edits of an 8192x8192 all-zero PNG
          (64 Mpx, a few hundred KB that decode to 256 MiB each) queued behind it: server RSS
          before and after

    python benchmarks/bridge_reliability.py                  # everything; prints a table
    python benchmarks/bridge_reliability.py --frames 2000 --soak 60
    python benchmarks/bridge_reliability.py --run-bomb       # also run one 64-Mpx edit
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plugin_bridge import protocol as P  # noqa: E402
from plugin_bridge.client import BridgeClient, BridgeError, read_token  # noqa: E402
from plugin_bridge.pngcodec import encode_png  # noqa: E402

FAST = {"steps": 2, "working_size": 32}
GUARD = 60.0


# ----------------------------------------------------------------------------- the server
class Server:
    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="cds-bridge-bench-"))
        self.log_path = self.home / "serve.log"
        env = {**os.environ, "XDG_CONFIG_HOME": str(self.home), "PYTHONPATH": str(REPO)}
        env.setdefault("OMP_NUM_THREADS", "1")
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cds_desktop", "--serve", "--port", "0",
             "--model", "tiny-random", "--device", "cpu"],
            stderr=self._log, stdout=subprocess.DEVNULL, cwd=REPO, env=env,
        )  # fmt: skip
        self.port = self._wait_ready()
        self.token = read_token(self.home / "cds-desktop" / "bridge-token")
        self.ps = psutil.Process(self.proc.pid)

    def _wait_ready(self) -> int:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            for line in self.log_path.read_text().splitlines():
                if "ready:" in line:
                    return int(line.rsplit("port ", 1)[1].split(";")[0])
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited:\n{self.log_path.read_text()}")
            time.sleep(0.2)
        raise SystemExit("the server did not start within 300 s")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def metrics(self) -> tuple[float, int, int]:
        """(RSS MiB, threads, open descriptors)."""
        return self.ps.memory_info().rss / 2**20, self.ps.num_threads(), self.ps.num_fds()

    def peak_rss(self) -> float:
        """Highest RSS of the server so far (VmHWM), MiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def client(self, **kwargs) -> BridgeClient:
        return BridgeClient(port=self.port, token=self.token, timeout=GUARD, **kwargs)

    def ping_ok(self) -> bool:
        try:
            with self.client() as client:
                return client.ping() >= 0
        except BridgeError:
            return False

    def log_count(self, fragment: str) -> int:
        return self.log_path.read_text().count(fragment)

    def stop(self) -> int:
        self.proc.send_signal(2)
        try:
            code = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code


def png(width: int, height: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    data = bytes(rng.randrange(256) for _ in range(width * height * 4))
    return encode_png(width, height, data, channels=4)


# ----------------------------------------------------------------------------- fuzz
WEIRD = [
    float("nan"), float("inf"), -float("inf"), "\ud800", "x\udfffy", "\\" * 30000, "a" * 70,
    2**80, -1, 0, True, None, [], {}, [[[[[]]]]], {"k": "\ud800"}, "", " ", "\x00", 1e308,
]  # fmt: skip
FIELDS = ["type", "job", "source", "target", "settings", "offset", "meta", "nonce", "token"]


def frame(header: dict, parts: list[tuple[str, bytes]] = ()) -> bytes:
    header = dict(header)
    if parts:
        header["parts"] = [{"name": n, "length": len(b)} for n, b in parts]
    body = json.dumps(header).encode("utf-8", "surrogatepass")  # NaN and \ud800 escapes allowed
    payload = b"".join(b for _, b in parts)
    return struct.pack(">IQ", len(body), len(payload)) + body + payload


def valid_edit(rng: random.Random, image: bytes) -> tuple[dict, list]:
    header = {"type": "edit", "job": f"j{rng.randrange(10**6)}", "source": "a cat",
              "target": "a dog", "settings": dict(FAST), "meta": {"n": 1}, "offset": [0, 0]}  # fmt: skip
    return header, [("image", image)]


def fuzz_frame(rng: random.Random, image: bytes) -> bytes:
    roll = rng.random()
    header, parts = valid_edit(rng, image)
    if roll < 0.25:  # weird values in fields
        for _ in range(rng.randint(1, 3)):
            header[rng.choice(FIELDS)] = rng.choice(WEIRD)
        if rng.random() < 0.3:
            header["settings"] = {rng.choice(["steps", "lr", "seed", "bogus"]): rng.choice(WEIRD)}
        return frame(header, parts if rng.random() < 0.7 else [])
    if roll < 0.35:  # other message types, sometimes weird
        kind = rng.choice(["ping", "cancel", "hello", "result", "frobnicate", "\\" * 30000])
        return frame({"type": kind, "job": rng.choice([None, "j", "\ud800", 5]),
                      "nonce": rng.choice(WEIRD)})  # fmt: skip
    data = bytearray(frame(header, parts))
    if roll < 0.6:  # flipped bytes anywhere
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if roll < 0.75:  # truncated
        return bytes(data[: rng.randrange(len(data))])
    if roll < 0.85:  # lying length fields
        json_len = rng.choice([0, 1, 2**31, 2**32 - 1, len(data)])
        payload_len = rng.choice([0, 1, 2**20, 2**63, 2**64 - 1])
        return struct.pack(">IQ", json_len, payload_len) + bytes(data[12:])
    if roll < 0.95:  # garbage
        return rng.randbytes(rng.randrange(1, 200))
    return bytes(data)  # a valid edit (it runs until the connection closes)


def read_replies(sock: socket.socket) -> bytes:
    sock.settimeout(GUARD)
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def check_replies(data: bytes, stats: dict) -> None:
    if not data:
        stats["closed without reply"] = stats.get("closed without reply", 0) + 1
        return
    stream = io.BytesIO(data)
    try:
        P.read_handshake(stream)
        while stream.tell() < len(data):
            msg = P.read_message(stream)  # strict: NaN or a lone surrogate would fail here
            if msg.type == P.ERROR:
                code = msg.get("code")
                stats[code] = stats.get(code, 0) + 1
                if code not in P.ERROR_CODES or code == P.INTERNAL:
                    stats["bad replies"] += 1
    except P.ProtocolError as exc:
        stats["bad replies"] += 1
        print(f"unparseable reply: {exc}", file=sys.stderr)


def run_fuzz(server: Server, frames: int, seed: int = 1) -> dict:
    rng = random.Random(seed)
    image = png(8, 8)
    hello = P.encode_message(P.hello(server.token, "fuzz"))
    stats = {"frames": 0, "connections": 0, "bad replies": 0, "liveness failures": 0}
    next_check = 500
    start = time.perf_counter()
    while stats["frames"] < frames and server.alive:
        count = rng.randint(1, 3)
        data = P.encode_handshake() + (hello if rng.random() < 0.9 else b"")
        data += b"".join(fuzz_frame(rng, image) for _ in range(count))
        with socket.create_connection(("127.0.0.1", server.port), timeout=GUARD) as sock:
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            check_replies(read_replies(sock), stats)
        stats["frames"] += count
        stats["connections"] += 1
        if stats["frames"] >= next_check:
            next_check += 500
            stats["liveness failures"] += not server.ping_ok()
    stats["seconds"] = time.perf_counter() - start
    stats["crashed"] = not server.alive
    return stats


# ----------------------------------------------------------------------------- soak
def run_soak(server: Server, edits: int) -> list[tuple[int, float, int, int]]:
    image, mask = png(32, 24, 1), encode_png(32, 24, bytes([255]) * (32 * 24), channels=1)
    rows = [(0, *server.metrics())]
    for i in range(1, edits + 1):
        with server.client() as client:
            client.edit(image, "a cat", "a dog", mask_png=mask, settings={**FAST, "seed": i})
        if i % 100 == 0 or i == edits:
            time.sleep(0.5)  # let the connection threads finish
            rows.append((i, *server.metrics()))
    return rows


# ----------------------------------------------------------------------------- burst
def run_burst(server: Server) -> dict:
    clients = [server.client(client_name=f"burst-{i}") for i in range(16)]
    errors: list[BaseException] = []

    def connect(c: BridgeClient) -> None:
        try:
            c.connect()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=connect, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(GUARD)
    welcomed = sum(c.welcome is not None for c in clients)
    start = time.perf_counter()
    try:
        server.client().connect()
        refused, code = None, "welcomed"
    except BridgeError as exc:
        refused, code = time.perf_counter() - start, exc.code
    for c in clients:
        c.close()
    time.sleep(1.0)
    races = [hello_race(server, 40) for _ in range(5)]
    return {"welcomed": welcomed, "17th": code, "refusal_ms": (refused or 0) * 1000,
            "race_welcomed": races}  # fmt: skip


def hello_race(server: Server, n: int) -> int:
    barrier = threading.Barrier(n)
    hold = threading.Event()
    results: list[str] = []

    def hello() -> None:
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=GUARD) as sock:
                data = P.encode_handshake() + P.encode_message(P.hello(server.token, "race"))
                barrier.wait(GUARD)
                sock.sendall(data)
                stream = P.SocketStream(sock)
                P.read_handshake(stream)
                reply = P.read_message(stream)
                results.append(reply.type if reply.type == P.WELCOME else reply.get("code"))
                hold.wait(GUARD)
        except Exception as exc:  # noqa: BLE001
            results.append(f"failed: {exc}")

    threads = [threading.Thread(target=hello) for _ in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + GUARD
    while len(results) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    hold.set()
    for t in threads:
        t.join(GUARD)
    time.sleep(0.5)
    return results.count(P.WELCOME)


# ----------------------------------------------------------------------------- bombs
def run_bombs(server: Server, clients: int = 16, per_client: int = 8) -> dict:
    side = 8192
    row = bytes(side * 4)
    bomb = encode_png(side, side, row * side, channels=4, level=9)
    blocker = server.client()
    blocker.connect()
    job = blocker.submit_edit(png(32, 24, 2), "a", "b", settings={**FAST, "steps": 100_000})
    for msg in blocker.events(job, timeout=GUARD):
        if msg.get("stage") == "running":
            break
    time.sleep(0.5)
    before = server.metrics()[0]
    peak = before
    busy = queued = 0
    conns = [blocker]
    for i in range(clients):
        if i:  # the blocker's connection is the first of the 16 (its job counts as one)
            conns.append(server.client(client_name=f"bomb-{i}"))
            conns[-1].connect()
        c = conns[-1]
        ids = [c.submit_edit(bomb, "a", "b", settings=FAST) for _ in range(per_client - (i == 0))]
        for jid in ids:
            first = next(c.events(jid, timeout=GUARD))
            queued += first.type == P.QUEUED
            busy += first.get("code") == P.BUSY
        peak = max(peak, server.metrics()[0])
    time.sleep(0.5)
    after = server.metrics()[0]
    for c in conns[1:]:
        c.close()
    blocker.close()  # cancels the running job and the blocker's queued uploads
    return {"bomb_kb": len(bomb) / 1024, "queued": queued, "busy": busy,
            "rss_before": before, "rss_after": after, "rss_peak": peak}  # fmt: skip


def run_one_bomb(server: Server) -> dict:
    """Run one 64-Mpx all-zero edit (2 steps at 32 px): the server's peak RSS (VmHWM)."""
    side = 8192
    bomb = encode_png(side, side, bytes(side * 4) * side, channels=4, level=9)
    start = time.perf_counter()
    with server.client() as client:
        result = client.edit(bomb, "a", "b", settings=FAST)
    return {"seconds": time.perf_counter() - start, "peak": server.peak_rss(),
            "result_kb": len(result.parts["image"]) / 1024}  # fmt: skip


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--soak", type=int, default=300)
    ap.add_argument(
        "--run-bomb", action="store_true", help="also run one 64-Mpx edit and report peak RSS"
    )
    args = ap.parse_args(argv)
    server = Server()
    try:
        fuzz = run_fuzz(server, args.frames)
        soak = run_soak(server, args.soak)
        burst = run_burst(server)
        bombs = run_bombs(server)
        peak_queued = server.peak_rss()
        one = run_one_bomb(server) if args.run_bomb else None
        alive = server.alive and server.ping_ok()
        tracebacks = server.log_count("Traceback")
    finally:
        code = server.stop()
    cpu = platform.processor() or platform.machine()
    print(f"bridge reliability: Python {platform.python_version()}, {os.cpu_count()} CPU "
          f"({cpu}), {platform.system()} {platform.release()}\n")  # fmt: skip
    print("| check | result |")
    print("|---|---|")
    codes = ", ".join(
        f"{k} {v}" for k, v in sorted(fuzz.items()) if k in P.ERROR_CODES or k.startswith("closed")
    )
    print(f"| fuzz: frames / connections | {fuzz['frames']} / {fuzz['connections']} "
          f"({fuzz['seconds']:.0f} s) |")  # fmt: skip
    print(f"| fuzz: server crashed / liveness pings failed | {fuzz['crashed']} / "
          f"{fuzz['liveness failures']} |")  # fmt: skip
    print(f"| fuzz: malformed, non-JSON or INTERNAL replies | {fuzz['bad replies']} |")
    print(f"| fuzz: replies by code | {codes} |")
    for n, rss, threads, fds in soak:
        print(f"| soak after {n} edits: RSS / threads / descriptors | {rss:.0f} MiB / "
              f"{threads} / {fds} |")  # fmt: skip
    print(f"| burst: 16 clients at once welcomed | {burst['welcomed']} / 16 |")
    print(f"| burst: 17th client | {burst['17th']} in {burst['refusal_ms']:.1f} ms |")
    print(f"| 40-hello race (5 trials): welcomed each time (max 16) | "
          f"{', '.join(map(str, burst['race_welcomed']))} |")  # fmt: skip
    print(f"| bombs: {bombs['queued']} queued 8192x8192 uploads of {bombs['bomb_kb']:.0f} KiB "
          f"({bombs['busy']} BUSY) | RSS {bombs['rss_before']:.0f} -> {bombs['rss_after']:.0f} "
          f"MiB (peak {bombs['rss_peak']:.0f}) |")  # fmt: skip
    print(f"| server peak RSS (VmHWM) up to here | {peak_queued:.0f} MiB |")
    if one is not None:
        print(f"| one 64-Mpx edit run to the end (2 steps, 32 px) | {one['seconds']:.0f} s, "
              f"peak RSS {one['peak']:.0f} MiB |")  # fmt: skip
    print(f"| server alive at the end / tracebacks in its log / exit code | {alive} / "
          f"{tracebacks} / {code} |")  # fmt: skip
    return 0 if alive and not fuzz["bad replies"] and not fuzz["crashed"] else 1


if __name__ == "__main__":
    sys.exit(main())
