"""`cds-desktop --serve` (serve_main): headless start, token file logged, Ctrl+C stops cleanly,
user mistakes are one line."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cds_desktop.serve import serve_main
from plugin_bridge.client import BridgeClient, read_token

REPO = Path(__file__).resolve().parents[2]
SERVE = "import sys; from cds_desktop.serve import serve_main; sys.exit(serve_main(sys.argv[1:]))"


def wait_for_line(proc: subprocess.Popen, fragment: str, seen: list[str]) -> str:
    for line in proc.stderr:
        seen.append(line)
        if fragment in line:
            return line
    raise AssertionError(f"server exited before printing {fragment!r}:\n{''.join(seen)}")


@pytest.mark.skipif(sys.platform.startswith("win"), reason="SIGINT delivery differs on Windows")
def test_serve_main_runs_headless_and_stops_on_ctrl_c(tmp_path):
    env = {**os.environ, "CDS_CONFIG_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, "--serve", "--port", "0", "--model", "tiny-random",
         "--device", "cpu"],
        stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    seen: list[str] = []
    try:
        token_line = wait_for_line(proc, "token file:", seen)
        token_file = tmp_path / "bridge-token"
        assert str(token_file) in token_line
        port = int(wait_for_line(proc, "ready:", seen).rsplit("port ", 1)[1].split(";")[0])
        with BridgeClient(port=port, token=read_token(token_file), timeout=60) as client:
            assert "tiny-random" in client.welcome["model"]
            assert client.ping() >= 0
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(seen) + rest
    assert "bridge stopped" in rest and "Traceback" not in rest


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--host", "0.0.0.0"], "--remote 0.0.0.0 (TLS)"),
        (["--allow-remote", "--host", "0.0.0.0"], "use --remote HOST"),
        (["--port", "70000"], "--port 70000"),
        (["--model", "/no/such/model/folder"], "/no/such/model/folder"),
    ],
)
def test_serve_main_user_mistakes_are_one_line(argv, fragment, capsys):
    assert serve_main(argv) == 2
    err = capsys.readouterr().err
    # the server's own log (timestamped INFO records) may precede it; the mistake is one line
    lines = [line for line in err.splitlines() if line.startswith("cds-desktop --serve: error:")]
    assert len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in err


def _start_remote(tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "CDS_CONFIG_DIR": str(tmp_path)}
    env.pop("CDS_BRIDGE_TOKEN", None)
    return subprocess.Popen(
        [sys.executable, "-c", SERVE, "--serve", "--remote", "127.0.0.2", "--port", "0",
         "--model", "tiny-random", "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
    )  # fmt: skip


def _pairing(proc: subprocess.Popen) -> dict[str, str]:
    info: dict[str, str] = {}
    for line in proc.stdout:
        key, _, value = line.strip().partition(": ")
        info[key] = value
        if line.startswith("on the other computer"):
            return info
    raise AssertionError(f"no pairing info; stderr:\n{proc.stderr.read()}")


@pytest.mark.skipif(sys.platform.startswith("win"), reason="SIGINT delivery differs on Windows")
def test_remote_mode_prints_pairing_once_and_serves_tls(tmp_path):
    """--remote on a loopback address (127.0.0.2): TLS with a certificate made on the first
    start (0600 beside the token), fingerprint printed each start, the token only the first."""
    from plugin_bridge import pinning

    fingerprints = []
    for start in range(2):
        proc = _start_remote(tmp_path)
        try:
            info = _pairing(proc)
            host_port = info["remote bridge (TLS)"]
            port = int(host_port.rsplit(":", 1)[1])
            fingerprints.append(info["certificate SHA-256 fingerprint"])
            token_key = "token (shown once; keep it secret)"
            if start == 0:
                token = info[token_key]
                assert token == (tmp_path / "bridge-token").read_text().strip()
            else:
                assert token_key not in info and info["token"].endswith("bridge-token")
            pins = pinning.PinStore(tmp_path / "client-pins.json")
            client = BridgeClient(
                "127.0.0.2", port, token=token, timeout=60, tls=True,
                fingerprint=fingerprints[-1], pins=pins,
            )  # fmt: skip
            with client:
                assert client.ping() >= 0
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0
    assert fingerprints[0] == fingerprints[1]  # the certificate is kept across restarts
    for name in ("bridge-key.pem", "bridge-cert.pem"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
