"""Protocol 2 authentication and the private token: the challenge-response maths, a port
squatter that learns nothing, wrong tokens on either side, old clients, $CDS_BRIDGE_TOKEN,
and the token's location and permissions on Windows (platform faked: no Windows machine
here, so the paths, the one-time move and the icacls command are checked as data)."""

from __future__ import annotations

import io
import socket
import sys
import threading

import pytest
from bridge_helpers import authenticate, client_of, raw_connect

from cds_desktop import bridge as bs
from cds_desktop.bridge import privacy
from plugin_bridge import auth, config
from plugin_bridge import client as C
from plugin_bridge import protocol as P

GUARD = 60.0
TOKEN = "ab" * 32


# ----------------------------------------------------------------------------- the maths
def test_proofs_depend_on_token_role_both_nonces_and_binding():
    nc, ns = auth.new_nonce(), auth.new_nonce()
    assert nc != ns and auth.valid_nonce(nc)
    server = auth.proof(TOKEN, auth.SERVER, nc, ns)
    assert auth.verify(server, TOKEN, auth.SERVER, nc, ns)
    others = [
        auth.proof(TOKEN, auth.CLIENT, nc, ns),  # a server proof is no client proof
        auth.proof("cd" * 32, auth.SERVER, nc, ns),
        auth.proof(TOKEN, auth.SERVER, auth.new_nonce(), ns),
        auth.proof(TOKEN, auth.SERVER, nc, auth.new_nonce()),
        auth.proof(TOKEN, auth.SERVER, nc, ns, "AB:CD"),
    ]
    assert len({server, *others}) == 6
    assert not any(auth.verify(o, TOKEN, auth.SERVER, nc, ns) for o in others)
    assert TOKEN not in server and TOKEN not in nc + ns
    for junk in (None, 1, "", server.upper(), server[:-1], ["x"]):
        assert not auth.verify(junk, TOKEN, auth.SERVER, nc, ns)


# ----------------------------------------------------------------------------- squatter
class Squatter:
    """Holds a loopback port before the bridge does and records every byte it receives.
    ``mode``: "silent" (accepts, never answers), "mimic" (answers like a bridge without
    the token: handshake, then a challenge with a made-up proof)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.received = bytearray()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn, _ = self.sock.accept()
        conn.settimeout(5)
        with conn:
            try:
                self._serve(conn)
                while True:  # record anything more the client sends
                    data = conn.recv(65536)
                    if not data:
                        break
                    self.received += data
            except OSError:
                pass

    def _serve(self, conn: socket.socket) -> None:
        if self.mode == "silent":
            return
        stream = _Recording(conn, self.received)
        P.read_handshake(stream)
        P.write_handshake(stream)
        hello = P.read_message(stream)
        fake = auth.proof("00" * 32, auth.SERVER, hello["nonce"], auth.new_nonce())
        P.write_message(stream, P.challenge(auth.new_nonce(), fake))

    def close(self) -> None:
        self.sock.close()
        self.thread.join(10)


class _Recording(P.SocketStream):
    def __init__(self, sock, record: bytearray) -> None:
        super().__init__(sock)
        self.record = record

    def read(self, n: int) -> bytes:
        data = super().read(n)
        self.record += data
        return data


@pytest.mark.parametrize("mode", ["silent", "mimic"])
def test_port_squatter_learns_nothing_about_the_token(mode):
    squatter = Squatter(mode)
    client = C.BridgeClient(port=squatter.port, token=TOKEN, timeout=2)
    with pytest.raises(C.BridgeError) as info:
        client.connect()
    squatter.close()
    got = bytes(squatter.received)
    assert got.startswith(P.encode_handshake())  # it did hear from the client ...
    for secret in (TOKEN.encode(), TOKEN.upper().encode(), bytes.fromhex(TOKEN)):
        assert secret not in got  # ... but never the token
    assert b'"type":"auth"' not in got and b"proof" not in got  # nor a proof of it
    if mode == "mimic":
        assert info.value.code == P.AUTH_FAILED
        assert "could not prove it knows the bridge token" in str(info.value)
    else:
        assert info.value.code == P.TIMEOUT


# ----------------------------------------------------------------------------- wrong tokens
def test_client_with_a_wrong_token_refuses_the_server_and_sends_no_proof(server):
    with pytest.raises(C.BridgeError) as info:
        client_of(server, token="0" * 64).connect()
    assert info.value.code == P.AUTH_FAILED and "copy it again" in str(info.value)
    with client_of(server) as client:  # the server is unharmed
        assert client.ping() >= 0


def test_a_wrong_client_proof_gets_a_fatal_auth_failed(server):
    with raw_connect(server, GUARD) as sock:
        stream = P.SocketStream(sock)
        P.write_handshake(stream)
        P.read_handshake(stream)
        P.write_message(stream, P.hello("hand-made", auth.new_nonce()))
        assert P.read_message(stream).type == P.CHALLENGE
        P.write_message(stream, P.auth_reply("0" * 64))
        reply = P.read_message(stream)
    assert reply.type == P.ERROR and reply["code"] == P.AUTH_FAILED and reply["fatal"]
    assert "wrong token" in reply["message"]


def test_the_right_proof_by_hand_is_welcomed(server):
    with raw_connect(server, GUARD) as sock:
        welcome = authenticate(sock, C.read_token())
    assert welcome["protocol"] == P.PROTOCOL_VERSION == 2


def test_protocol_1_clients_get_a_clear_error(server):
    """An old plug-in: handshake version 1 (and, were it accepted, its token in the hello)."""
    with raw_connect(server, GUARD) as sock:
        sock.sendall(P.encode_handshake(1))
        data = _read_all(sock)
    stream = io.BytesIO(data)
    assert P.read_handshake(stream) == 2
    reply = P.read_message(stream)
    assert reply["code"] == P.UNSUPPORTED_VERSION
    assert "client protocol 1, server protocol 2" in reply["message"]
    assert "plug-in" in reply["message"]
    # an old hello (token inside) under a new handshake: refused, and never checked
    with raw_connect(server, GUARD) as sock:
        old_hello = P.Message(P.HELLO, None, token=C.read_token(), client="old")
        sock.sendall(P.encode_handshake() + P.encode_message(old_hello))
        data = _read_all(sock)
    stream = io.BytesIO(data)
    P.read_handshake(stream)
    reply = P.read_message(stream)
    assert reply["code"] == P.AUTH_FAILED and "update the plug-in" in reply["message"]


def _read_all(sock) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


# ----------------------------------------------------------------------------- token sources
def test_token_from_the_environment_for_sandboxed_hosts(server, monkeypatch, tmp_path):
    token = C.read_token()
    monkeypatch.setenv(config.CONFIG_ENV, str(tmp_path / "empty"))  # no token file there
    with pytest.raises(C.BridgeError) as info:
        C.read_token()
    assert info.value.code == C.NO_TOKEN
    monkeypatch.setenv(config.TOKEN_ENV, f"  {token}\n")
    assert C.read_token() == token
    with client_of(server) as client:
        assert client.ping() >= 0


def test_config_dir_override_on_every_os(tmp_path):
    env = {config.CONFIG_ENV: str(tmp_path), "APPDATA": "/r", "LOCALAPPDATA": "/l"}
    for platform in ("linux", "darwin", "win32", "freebsd13"):
        assert config.config_dir(platform, env) == tmp_path
        assert config.legacy_config_dir(platform, env) is None


def test_windows_config_is_local_and_the_roaming_one_is_legacy():
    env = {"APPDATA": r"C:\U\a\AppData\Roaming", "LOCALAPPDATA": r"C:\U\a\AppData\Local"}
    assert str(config.config_dir("win32", env)).endswith("Local/cds-desktop") or str(
        config.config_dir("win32", env)
    ).endswith("Local\\cds-desktop")
    assert "Roaming" in str(config.legacy_config_dir("win32", env))
    assert config.legacy_config_dir("linux", env) is None
    assert config.legacy_config_dir("darwin", env) is None
    home_only = {"USERPROFILE": "/home/u"}
    assert config.config_dir("win32", home_only).parts[-3:] == ("AppData", "Local", "cds-desktop")


@pytest.fixture
def fake_windows(monkeypatch, tmp_path):
    """sys.platform = win32 with %APPDATA%/%LOCALAPPDATA% in tmp, icacls recorded."""
    calls: list[list[str]] = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return privacy.subprocess.CompletedProcess(cmd, 0, "processed 1 files", "")

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.delenv(config.CONFIG_ENV, raising=False)
    monkeypatch.delenv(config.TOKEN_ENV, raising=False)
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "Local"))
    monkeypatch.setenv("USERNAME", "ada")
    monkeypatch.setenv("USERDOMAIN", "STUDIO")
    monkeypatch.setattr(privacy.subprocess, "run", fake_run)
    return tmp_path, calls


def test_windows_token_is_owner_only_via_icacls(fake_windows):
    tmp_path, calls = fake_windows
    token = bs.ensure_token()
    path = tmp_path / "Local" / "cds-desktop" / "bridge-token"
    assert path.read_text().strip() == token
    assert len(calls) == 1
    cmd = calls[0]
    assert cmd[0] == "icacls" and cmd[2:] == ["/inheritance:r", "/grant:r", "STUDIO\\ada:F"]
    assert cmd[1].startswith(str(path.parent))  # the temp file, before it is renamed


def test_old_roaming_token_is_read_once_then_moved(fake_windows):
    tmp_path, calls = fake_windows
    legacy = tmp_path / "Roaming" / "cds-desktop" / "bridge-token"
    legacy.parent.mkdir(parents=True)
    legacy.write_text("c" * 64 + "\n")
    # a client finds it there while the server has not moved it yet
    assert C.read_token() == "c" * 64
    assert bs.ensure_token() == "c" * 64  # the server keeps the token plug-ins already have
    new = tmp_path / "Local" / "cds-desktop" / "bridge-token"
    assert new.read_text().strip() == "c" * 64
    assert not legacy.exists() and not legacy.parent.exists()
    assert calls and calls[0][-1] == "STUDIO\\ada:F"
    assert C.read_token() == "c" * 64 and bs.ensure_token() == "c" * 64


def test_icacls_failure_is_a_warning_not_a_crash(tmp_path, caplog):
    def failing(cmd, **kwargs):
        return privacy.subprocess.CompletedProcess(cmd, 5, "", "Access is denied.\n")

    f = tmp_path / "x"
    f.write_text("x")
    env = {"USERNAME": "ada"}
    with caplog.at_level("WARNING"):
        assert not privacy.restrict_to_owner(f, "win32", env, run=failing)
    assert "Access is denied." in caplog.text
    assert privacy.icacls_command("C:\\t", "ada") == [
        "icacls", "C:\\t", "/inheritance:r", "/grant:r", "ada:F"
    ]  # fmt: skip
    assert not privacy.restrict_to_owner(f, "win32", {}, run=failing)  # no %USERNAME%
    assert privacy.restrict_to_owner(f, "linux")
    assert (f.stat().st_mode & 0o777) == 0o600


def test_the_minimal_client_in_the_protocol_doc_works(server, tmp_path):
    """docs/bridge-protocol.md's hand-written client (hashlib/hmac only) edits an image."""
    import os
    import pathlib
    import subprocess

    from bridge_helpers import png_bytes, rgba_image

    doc = pathlib.Path(__file__).resolve().parents[2] / "docs" / "bridge-protocol.md"
    text = doc.read_text(encoding="utf-8")
    code = text.split("```python\nimport hashlib, hmac", 1)[1].split("```", 1)[0]
    code = "import hashlib, hmac" + code.replace("47860", str(server.port))
    code = code.replace('"settings": {"steps": 50}', '"settings": {"steps": 2, "working_size": 32}')
    (tmp_path / "in.png").write_bytes(png_bytes(rgba_image(3, 16, 16)))
    script = tmp_path / "mini.py"
    script.write_text(f"TOKEN_FILE = {str(C.token_path())!r}\n" + code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "'welcome'" in proc.stdout
    assert (tmp_path / "out.png").read_bytes().startswith(b"\x89PNG")
