"""Remote mode over a real TLS socket, on loopback addresses only (the server on 127.0.0.2, a
man in the middle on 127.0.0.3): certificate pinning on first use, a wrong or changed
fingerprint refused, a wrong token refused, a man-in-the-middle certificate refused (and
useless even to a client that accepts it), the whole edit round trip."""

from __future__ import annotations

import select
import socket
import threading
import time

import numpy as np
import pytest
from bridge_helpers import (
    FAST,
    authenticate,
    binding_of,
    box_mask,
    client_of,
    png_array,
    png_bytes,
    raw_connect,
    rgba_image,
)

from cds_desktop.bridge.tls import ServerTLS, ensure_certificate, fingerprint_of
from plugin_bridge import client as C
from plugin_bridge import pinning
from plugin_bridge import protocol as P

GUARD = 60.0
MITM_HOST = "127.0.0.3"


@pytest.fixture
def pins(tmp_path):
    return pinning.PinStore(tmp_path / "known-bridges.json")


def remote_client(server, pins, **kwargs) -> C.BridgeClient:
    return C.BridgeClient(server.host, server.port, timeout=GUARD, pins=pins, **kwargs)


def test_certificate_is_made_once_owner_only_and_its_fingerprint_is_stable(tmp_path):
    cert, key, created = ensure_certificate(tmp_path)
    assert created and (key.stat().st_mode & 0o777) == 0o600
    again = ensure_certificate(tmp_path)
    assert again == (cert, key, False)
    fp = fingerprint_of(cert)
    assert ServerTLS(cert, key).fingerprint == fp == pinning.normalize(fp.replace(":", "").lower())


def test_edit_round_trip_over_tls_with_trust_on_first_use(tls_server, pins):
    assert not C.config.is_loopback("192.0.2.1") and C.config.is_loopback(tls_server.host)
    img, mask = rgba_image(5), box_mask(4, 4, 20, 16)
    with remote_client(tls_server, pins, tls=True) as client:
        assert client.pinned_now and client.server_fingerprint == tls_server.tls.fingerprint
        result = client.edit(png_bytes(img), "a", "b", png_bytes(mask), FAST, offset=(7, 9))
    out = png_array(result.parts["image"])
    assert np.array_equal(out[mask == 0], img[mask == 0]) and result["offset"] == [7, 9]
    assert pins.get(tls_server.host, tls_server.port) == tls_server.tls.fingerprint
    with remote_client(tls_server, pins, tls=True) as client:  # second time: pin matches
        assert not client.pinned_now and client.ping() >= 0


def test_wrong_fingerprint_is_refused_before_anything_is_sent(tls_server, pins):
    wrong = pinning.format_fingerprint("11" * 32)
    with pytest.raises(C.BridgeError) as info:
        remote_client(tls_server, pins, tls=True, fingerprint=wrong).connect()
    assert info.value.code == C.FINGERPRINT_MISMATCH
    assert wrong in str(info.value) and tls_server.tls.fingerprint in str(info.value)
    assert pins.get(tls_server.host, tls_server.port) is None


def test_changed_certificate_is_refused_with_a_clear_message(tls_server, pins):
    old = pinning.format_fingerprint("22" * 32)
    pins.pin(tls_server.host, tls_server.port, old)
    with pytest.raises(C.BridgeError) as info:
        remote_client(tls_server, pins, tls=True).connect()
    assert info.value.code == C.FINGERPRINT_MISMATCH
    assert "CHANGED" in str(info.value) and old in str(info.value)
    # the user vouches for the new certificate by entering its fingerprint: accepted, re-pinned
    fp = tls_server.tls.fingerprint
    with remote_client(tls_server, pins, tls=True, fingerprint=fp) as client:
        assert client.ping() >= 0
    assert pins.get(tls_server.host, tls_server.port) == fp


def test_wrong_token_is_refused_over_tls(tls_server, pins):
    with pytest.raises(C.BridgeError) as info:
        remote_client(tls_server, pins, tls=True, token="9" * 64).connect()
    assert info.value.code == P.AUTH_FAILED


def test_plain_client_on_the_tls_port_and_tls_client_on_the_plain_port(tls_server, server, pins):
    with socket.create_connection((tls_server.host, tls_server.port), timeout=GUARD) as sock:
        sock.sendall(P.encode_handshake())  # not a TLS ClientHello
        sock.settimeout(10)
        try:
            data = sock.recv(100)
        except ConnectionResetError:
            data = b""
    assert not data.startswith(b"CDSB")
    with pytest.raises(C.BridgeError) as info:
        C.BridgeClient("127.0.0.1", server.port, timeout=10, tls=True, pins=pins).connect()
    assert info.value.code == C.CONNECTION_LOST and "TLS handshake" in str(info.value)
    with client_of(tls_server) as client:
        assert client.ping() >= 0


def test_plain_connections_to_other_computers_are_refused_by_the_client():
    with pytest.raises(C.BridgeError, match="needs TLS"):
        C.BridgeClient("192.0.2.1", 1, tls=False, token="x" * 64, timeout=1).connect()


def test_two_frames_in_one_tls_record_are_both_answered(tls_server):
    """Decrypted bytes waiting inside the TLS object are invisible to select(): the server
    must still see the second ping at once (not after its idle timeout)."""
    with raw_connect(tls_server, GUARD) as sock:
        authenticate(sock, C.read_token(), binding_of(tls_server))
        sock.sendall(P.encode_message(P.ping("one")) + P.encode_message(P.ping("two")))
        sock.settimeout(10)
        stream = P.SocketStream(sock)
        nonces = [P.read_message(stream)["nonce"] for _ in range(2)]
    assert nonces == ["one", "two"]


# ----------------------------------------------------------------------------- man in the middle
class Interceptor:
    """A man in the middle on 127.0.0.3: terminates the client's TLS with its own certificate,
    opens its own TLS connection to the real server and relays (recording) the plaintext."""

    def __init__(self, target, cert_dir) -> None:
        self.target = target
        self.tls, _ = ServerTLS.for_folder(cert_dir)
        self.seen = bytearray()
        self.listener = socket.create_server((MITM_HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            raw, _ = self.listener.accept()
        except OSError:
            return
        down = self.tls.wrap(raw)
        down.settimeout(GUARD)
        up = raw_connect(self.target, GUARD)
        try:
            self._relay(down, up)
        except OSError:
            pass
        finally:
            down.close()
            up.close()

    def _relay(self, down, up) -> None:
        while True:
            ready = [s for s in (down, up) if s.pending()]
            if not ready:
                ready, _, _ = select.select([down, up], [], [], GUARD)
            for src in ready:
                data = src.recv(65536)
                if not data:
                    return
                self.seen += data
                (up if src is down else down).sendall(data)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(GUARD)


def test_man_in_the_middle_certificate_is_refused(tls_server, pins, tmp_path):
    mitm = Interceptor(tls_server, tmp_path / "mitm")
    try:
        client = C.BridgeClient(
            MITM_HOST, mitm.port, timeout=GUARD, tls=True, pins=pins,
            fingerprint=tls_server.tls.fingerprint,  # what the user copied from the server
        )  # fmt: skip
        with pytest.raises(C.BridgeError) as info:
            client.connect()
    finally:
        mitm.close()
    assert info.value.code == C.FINGERPRINT_MISMATCH
    assert mitm.tls.fingerprint in str(info.value)
    assert bytes(mitm.seen) == b""  # refused before a single byte of the protocol


def test_man_in_the_middle_gains_nothing_from_a_client_that_trusted_it(tls_server, pins, tmp_path):
    """Trust on first use went wrong (the first connection was intercepted): the proofs are
    bound to the certificate each side sees, so the relayed challenge-response fails."""
    mitm = Interceptor(tls_server, tmp_path / "mitm")
    token = C.read_token()
    try:
        client = C.BridgeClient(MITM_HOST, mitm.port, timeout=GUARD, tls=True, pins=pins)
        with pytest.raises(C.BridgeError) as info:
            client.connect()
    finally:
        mitm.close()
    assert client.pinned_now  # it did accept the interceptor's certificate ...
    assert info.value.code == P.AUTH_FAILED  # ... but not the relayed server proof
    seen = bytes(mitm.seen)
    assert seen.startswith(P.encode_handshake()) and b'"type":"challenge"' in seen
    assert token.encode() not in seen and bytes.fromhex(token) not in seen
    assert b'"type":"auth"' not in seen  # the client never proved anything to it


def test_a_silent_tcp_client_on_the_tls_port_is_dropped_at_the_handshake_deadline(tls_server):
    """No TLS ClientHello at all: the same total deadline (5 s in these tests) as plain TCP."""
    with socket.create_connection((tls_server.host, tls_server.port), timeout=GUARD) as sock:
        start = time.monotonic()
        try:
            data = sock.recv(100)
        except ConnectionResetError:
            data = b""
        waited = time.monotonic() - start
    assert data == b"" and waited < 15, waited
    with client_of(tls_server) as client:
        assert client.ping() >= 0


def test_an_unwritable_pin_file_needs_the_fingerprint(tls_server, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    pins = pinning.PinStore(blocked / "known-bridges.json")  # its folder is a file
    with pytest.raises(C.BridgeError) as info:
        remote_client(tls_server, pins, tls=True).connect()
    assert info.value.code == C.FINGERPRINT_MISMATCH
    assert "enter the fingerprint" in str(info.value)
    fp = tls_server.tls.fingerprint
    with remote_client(tls_server, pins, tls=True, fingerprint=fp) as client:
        assert client.ping() >= 0 and not client.pinned_now
