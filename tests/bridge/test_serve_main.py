"""`cds-desktop --serve` (serve_main): headless start, token file logged, Ctrl+C stops cleanly,
user mistakes are one line."""

from __future__ import annotations

import os
import signal
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
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, "--serve", "--port", "0", "--model", "tiny-random",
         "--device", "cpu"],
        stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    seen: list[str] = []
    try:
        token_line = wait_for_line(proc, "token file:", seen)
        token_file = tmp_path / "cds-desktop" / "bridge-token"
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
        (["--host", "0.0.0.0"], "--allow-remote"),
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
