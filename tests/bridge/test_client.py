"""The stdlib client: token location, clear errors, poll(), the command line, and imports that
work without torch/numpy/PIL/Qt (as inside Krita's and GIMP's Python)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import platformdirs
import pytest
from bridge_helpers import FAST, box_mask, png_array, png_bytes, rgba_image

from plugin_bridge import client as C
from plugin_bridge import protocol as P

REPO = Path(__file__).resolve().parents[2]
GUARD = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_token_path_follows_xdg_like_platformdirs(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("CDS_CONFIG_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert C.token_path() == tmp_path / "cds-desktop" / "bridge-token"
    assert C.token_path().parent == Path(platformdirs.user_config_dir("cds-desktop"))
    monkeypatch.setenv("XDG_CONFIG_HOME", "  ")
    assert C.token_path() == Path.home() / ".config" / "cds-desktop" / "bridge-token"
    assert C.token_path().parent == Path(platformdirs.user_config_dir("cds-desktop"))


def test_token_path_on_windows_is_local_not_roaming_and_on_macos(monkeypatch, tmp_path):
    """Platforms faked: sys.platform and the environment (no Windows/macOS machine here)."""
    monkeypatch.delenv("CDS_CONFIG_DIR", raising=False)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "Local"))
    assert C.token_path() == tmp_path / "Local" / "cds-desktop" / "bridge-token"
    monkeypatch.setattr(sys, "platform", "darwin")
    expected = Path.home() / "Library" / "Application Support" / "cds-desktop" / "bridge-token"
    assert C.token_path() == expected


def test_missing_token_says_how_to_start_the_server(tmp_path):
    with pytest.raises(C.BridgeError) as info:
        C.read_token(tmp_path / "nope")
    assert info.value.code == C.NO_TOKEN and "cds-desktop --serve" in str(info.value)


def test_no_server_gives_a_clear_one_line_error():
    client = C.BridgeClient(port=free_port(), token="x" * 64, timeout=5)
    with pytest.raises(C.BridgeError) as info:
        client.connect()
    assert info.value.code == C.NOT_RUNNING
    assert "start it with `cds-desktop --serve`" in str(info.value)
    assert "\n" not in str(info.value)


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "plugin_bridge.client", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def test_cli_without_server_is_one_line_and_writes_nothing(tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes(png_bytes(rgba_image(0)))
    out = tmp_path / "out.png"
    proc = run_cli(
        str(src), "--source", "a", "--target", "b", "--port", str(free_port()), "-o", str(out),
        "--token-file", str(_token_file(tmp_path)),
    )  # fmt: skip
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "start it with `cds-desktop --serve`" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_cli_rejects_a_non_png_input(tmp_path):
    src = tmp_path / "in.png"
    src.write_text("not an image")
    proc = run_cli(str(src), "--source", "a", "--target", "b", "-o", str(tmp_path / "o.png"))
    assert proc.returncode == 1 and "not a PNG" in proc.stderr and "Traceback" not in proc.stderr


def _token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("y" * 64)
    return path


def test_cli_edits_through_a_running_server(server, tmp_path):
    img, mask = rgba_image(21), box_mask(4, 4, 16, 16)
    (tmp_path / "in.png").write_bytes(png_bytes(img))
    (tmp_path / "m.png").write_bytes(png_bytes(mask))
    out = tmp_path / "out.png"
    proc = run_cli(
        str(tmp_path / "in.png"), "--source", "a", "--target", "b", "--mask",
        str(tmp_path / "m.png"), "--port", str(server.port), "--steps", "2", "--mode", "dds",
        "--seed", "3", "-o", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "step 2/2" in proc.stderr
    edited = png_array(out.read_bytes())
    assert np.array_equal(edited[mask == 0], img[mask == 0])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_cli_edits_through_a_remote_bridge_pinning_its_certificate(tls_server, tmp_path):
    """--host + TLS: the first run trusts (and says so), a wrong --fingerprint is one line."""
    img = rgba_image(22)
    (tmp_path / "in.png").write_bytes(png_bytes(img))
    env = {"CDS_CONFIG_DIR": str(tmp_path / "client-config")}  # no token file there
    env["CDS_BRIDGE_TOKEN"] = C.read_token()  # the token given as a sandboxed host would
    base = [str(tmp_path / "in.png"), "--source", "a", "--target", "b", "--steps", "2",
            "--host", tls_server.host, "--port", str(tls_server.port), "--tls"]  # fmt: skip
    proc = run_cli(*base, "-o", str(tmp_path / "out.png"), env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"trusting its certificate {tls_server.tls.fingerprint}" in proc.stderr
    assert png_array((tmp_path / "out.png").read_bytes()).shape == img.shape
    proc = run_cli(*base, "-o", str(tmp_path / "again.png"), env=env)
    assert proc.returncode == 0 and "trusting" not in proc.stderr  # pinned: silent
    wrong = ":".join(["0F"] * 32)
    proc = run_cli(*base, "--fingerprint", wrong, "-o", str(tmp_path / "no.png"), env=env)
    assert proc.returncode == 1
    assert "not the expected" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "no.png").exists()


def test_poll_is_non_blocking_and_collects_a_jobs_messages(server):
    with C.BridgeClient(port=server.port, timeout=GUARD) as client:
        assert client.poll(0) is None  # nothing pending: returns at once
        job = client.submit_edit(png_bytes(rgba_image(8)), "a", "b", settings=FAST)
        seen = []
        while not seen or not seen[-1].is_final:
            msg = client.poll(0.05)
            if msg is not None:
                seen.append(msg)
    assert {m.job for m in seen} == {job}
    assert seen[0].type == P.QUEUED and seen[-1].type == P.RESULT


def test_events_keep_other_jobs_messages_for_later(server):
    with C.BridgeClient(port=server.port, timeout=GUARD) as client:
        first = client.submit_edit(png_bytes(rgba_image(9)), "a", "b", settings=FAST)
        second = client.submit_edit(png_bytes(rgba_image(10)), "a", "b", settings=FAST)
        second_msgs = list(client.events(second, timeout=GUARD))
        first_msgs = list(client.events(first, timeout=GUARD))
    assert {m.job for m in second_msgs} == {second} and second_msgs[-1].type == P.RESULT
    assert {m.job for m in first_msgs} == {first} and first_msgs[-1].type == P.RESULT
    assert first_msgs[0].type == P.QUEUED


def test_edit_raises_bridge_error_with_the_server_code(server):
    with C.BridgeClient(port=server.port, timeout=GUARD) as client:
        with pytest.raises(C.BridgeError) as info:
            client.edit(png_bytes(rgba_image(1)), "a", "b", settings={"steps": -1})
    assert info.value.code == P.BAD_REQUEST and "steps" in str(info.value)


BLOCKER = """
import sys
BLOCKED = ("torch", "numpy", "PIL", "PyQt6", "PyQt5", "cds_desktop", "diffusers")
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked import of {name}")
        return None
sys.meta_path.insert(0, Block())
"""


def test_plugin_bridge_imports_with_heavy_packages_blocked():
    code = BLOCKER + textwrap.dedent(
        """
        import plugin_bridge.protocol, plugin_bridge.client, plugin_bridge.pngcodec
        from plugin_bridge.pngcodec import encode_png, decode_png
        assert decode_png(encode_png(2, 1, bytes(8))).rgba == bytes(8)
        try:
            import numpy
        except ImportError:
            print("blocker works")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    assert "blocker works" in proc.stdout


# ----------------------------------------------------------------------------- Ctrl+C
def test_waits_are_cut_into_short_slices(monkeypatch):
    """A blocking select() ignores Ctrl+C on Windows: no single wait may be longer than
    WAIT_SLICE, even when the caller waits for ever (here: a socket that stays silent)."""
    waits = []

    def fake_select(rlist, wlist, xlist, timeout):
        waits.append(timeout)
        if len(waits) == 20:
            raise KeyboardInterrupt  # what Python raises between two slices on Ctrl+C
        return [], [], []

    monkeypatch.setattr(C.select, "select", fake_select)
    left, right = socket.socketpair()
    with left, right:
        with pytest.raises(KeyboardInterrupt):
            C._wait_readable(left, None)
        assert len(waits) == 20 and max(waits) <= C.WAIT_SLICE
        waits.clear()
        assert C._wait_readable(left, 0) is False and waits == [0.0]


def _interrupt_cli(tmp_path: Path, port: int, ready, *token_args: str) -> subprocess.Popen:
    """Start the client CLI against ``port``, call ``ready(proc)``, which returns once the
    client waits, then send SIGINT; returns the finished process."""
    src = tmp_path / "in.png"
    src.write_bytes(png_bytes(rgba_image(5)))
    out = tmp_path / "out.png"
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugin_bridge.client", str(src), "--source", "a", "--target",
         "b", "--steps", "2000", "--port", str(port), "--timeout", "60", "-o", str(out),
         *token_args],
        stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        ready(proc)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)  # the client's own timeout is 60 s: only Ctrl+C ends it sooner
    finally:
        proc.kill()
    assert not out.exists()
    return proc


@pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX signals")
def test_ctrl_c_ends_a_client_waiting_on_a_bridge_that_never_answers(tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        listener.settimeout(30)
        accepted = []
        ready = lambda proc: accepted.append(listener.accept()[0])  # noqa: E731
        token = ("--token-file", str(_token_file(tmp_path)))
        proc = _interrupt_cli(tmp_path, listener.getsockname()[1], ready, *token)
        accepted[0].close()
    stderr = proc.stderr.read()
    assert proc.returncode == 130, stderr
    assert stderr.splitlines() == ["interrupted: the edit was cancelled"], stderr


@pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX signals")
def test_ctrl_c_ends_a_client_waiting_for_its_job(server, tmp_path):
    def queued(proc):
        line = "?"
        while line and "queued" not in line:  # "" at the end of stderr: the client ended
            line = proc.stderr.readline()
        assert line, "the client ended before its job was queued"

    proc = _interrupt_cli(tmp_path, server.port, queued)
    lines = [line for line in proc.stderr.read().splitlines() if line.strip()]
    assert proc.returncode == 130, lines
    assert lines[-1] == "interrupted: the edit was cancelled" and "Traceback" not in lines
