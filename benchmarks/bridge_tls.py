"""Cost of the bridge's security: connection set-up (handshake + challenge-response, plus TLS in
remote mode) and upload throughput, plain TCP on 127.0.0.1 vs TLS on 127.0.0.2. Loopback only.

    python benchmarks/bridge_tls.py [--connects 50] [--upload-mib 32]

Prints a markdown table. The upload is an ``edit`` whose image is a PNG header claiming more
pixels than the server allows plus filler bytes: the server reads the whole frame (decrypting
it on TLS) and answers TOO_LARGE without decoding, so the time is the transport's.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cds_desktop.bridge import BridgeServer, ServerLimits  # noqa: E402
from cds_desktop.bridge.tls import ServerTLS  # noqa: E402
from cds_desktop.engine.jobs import JobQueue  # noqa: E402
from plugin_bridge import pinning  # noqa: E402
from plugin_bridge import protocol as P  # noqa: E402
from plugin_bridge.client import BridgeClient, BridgeError  # noqa: E402

TOKEN = "ab" * 32


def oversized_png(total: int) -> bytes:
    """A PNG signature + IHDR of 100000 x 100000 pixels, padded to ``total`` bytes."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 6, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    chunk += struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    head = b"\x89PNG\r\n\x1a\n" + chunk
    return head + bytes(max(0, total - len(head)))


def measure(server: BridgeServer, pins: pinning.PinStore, connects: int, upload: bytes) -> dict:
    tls = server.tls is not None
    fp = server.tls.fingerprint if tls else None

    def client() -> BridgeClient:
        return BridgeClient(
            server.host, server.port, token=TOKEN, timeout=60, tls=tls, fingerprint=fp, pins=pins
        )

    setups = []
    for _ in range(connects):
        start = time.perf_counter()
        with client() as c:
            c.ping()
            setups.append(time.perf_counter() - start)
    with client() as c:
        pings = []
        for _ in range(connects):
            pings.append(c.ping())
        start = time.perf_counter()
        try:
            c.edit(upload, "a", "b")
        except BridgeError as exc:
            assert exc.code == P.TOO_LARGE, exc
        upload_s = time.perf_counter() - start
    return {
        "setup_ms": statistics.median(setups) * 1000,
        "ping_ms": statistics.median(pings) * 1000,
        "upload_mib_s": len(upload) / (1 << 20) / upload_s,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--connects", type=int, default=50)
    ap.add_argument("--upload-mib", type=int, default=32)
    args = ap.parse_args()
    upload = oversized_png(args.upload_mib << 20)
    limits = ServerLimits(max_payload=(args.upload_mib + 1) << 20)
    queue = JobQueue(loader=lambda *a, **k: None)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tls, _ = ServerTLS.for_folder(Path(tmp))
        pins = pinning.PinStore(Path(tmp) / "pins.json")
        for name, host, server_tls in (("plain, 127.0.0.1", "127.0.0.1", None),
                                       ("TLS, 127.0.0.2", "127.0.0.2", tls)):  # fmt: skip
            server = BridgeServer(
                queue, host=host, port=0, token=TOKEN, tls=server_tls, limits=limits
            ).start()
            try:
                rows[name] = measure(server, pins, args.connects, upload)
            finally:
                server.stop()
    queue.shutdown()
    print(f"bridge transport: Python {platform.python_version()}, {os.cpu_count()} CPU, "
          f"{platform.system()} {platform.release()}; {args.connects} connections, "
          f"{args.upload_mib} MiB upload\n")  # fmt: skip
    print("| transport | connect + authenticate + ping (median) | ping (median) | upload |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['setup_ms']:.1f} ms | {r['ping_ms']:.2f} ms | "
              f"{r['upload_mib_s']:.0f} MiB/s |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
