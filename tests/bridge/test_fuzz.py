"""Property-based fuzzing of a running server: malformed, truncated and oversized input gets an
error reply or a closed connection, never a crash, and the next valid client is served. Every
test runs against the plain loopback listener and the TLS (remote-mode) listener."""

from __future__ import annotations

import io
import json
import socket
import ssl
import struct

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
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from plugin_bridge import protocol as P
from plugin_bridge.client import read_token

GUARD = 30.0
TINY_PNG = png_bytes(rgba_image(0, 8, 8))

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=12)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
message_types = st.sampled_from(
    [P.EDIT, P.CANCEL, P.PING, P.HELLO, P.RESULT, P.WELCOME, "", "nonsense"]
)
setting_keys = st.sampled_from(["steps", "mode", "seed", "lr", "patch_sizes", "t_range", "bogus"])


@st.composite
def headers(draw) -> dict:
    header: dict = {}
    if draw(st.booleans()):
        header["type"] = draw(message_types)
    if draw(st.booleans()):
        header["job"] = draw(st.none() | st.text(max_size=70) | st.integers())
    for key in draw(st.lists(st.sampled_from(["source", "target", "offset", "meta", "nonce"]))):
        header[key] = draw(json_values)
    if draw(st.booleans()):
        header["settings"] = draw(
            st.dictionaries(setting_keys, json_values, max_size=3) | json_values
        )
    return header


@st.composite
def frames(draw) -> bytes:
    """A frame that is usually wrong somewhere: header, parts, lengths or content."""
    header = draw(headers())
    payload_parts = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["image", "mask", "preview", "", "x" * 40]),
                st.sampled_from([TINY_PNG, TINY_PNG[:20], b"", b"junk"]),
            ),
            max_size=3,
        )
    )
    if payload_parts or draw(st.booleans()):
        header["parts"] = [{"name": n, "length": len(b)} for n, b in payload_parts]
    if draw(st.booleans()) and header.get("parts"):
        header["parts"][0]["length"] = draw(st.integers(-5, 2**40))
    payload = b"".join(b for _, b in payload_parts)
    body = draw(
        st.sampled_from(["json", "raw"]).flatmap(
            lambda kind: (
                st.just(json.dumps(header).encode()) if kind == "json" else st.binary(max_size=40)
            )
        )
    )
    json_len = draw(st.sampled_from([len(body)]) | st.integers(0, 2**32 - 1))
    payload_len = draw(st.sampled_from([len(payload)]) | st.integers(0, 2**64 - 1))
    data = struct.pack(">IQ", json_len, payload_len) + body + payload
    cut = draw(st.none() | st.integers(0, len(data)))
    return data if cut is None else data[:cut]


@st.composite
def edit_frames(draw) -> bytes:
    """A well-framed edit whose fields, settings and parts are fuzzed."""
    msg = P.edit(
        draw(st.text(min_size=1, max_size=64)),
        draw(st.sampled_from([TINY_PNG, TINY_PNG[:30], b"", png_bytes(rgba_image(1, 80, 80))])),
        draw(st.text(max_size=8) | st.just("a cat")),
        draw(st.text(max_size=8) | st.just("a dog")),
    )
    if draw(st.booleans()):
        msg.parts["mask"] = draw(
            st.sampled_from([png_bytes(box_mask(0, 0, 4, 4, 8, 8)), TINY_PNG, b"\x89PNG"])
        )
    msg["settings"] = draw(st.dictionaries(setting_keys, json_values, max_size=3) | json_values)
    for key in draw(st.lists(st.sampled_from(["offset", "meta", "source", "target"]), max_size=2)):
        msg[key] = draw(json_values)
    return P.encode_message(msg)


@pytest.fixture(params=["plain", "tls"])
def server(request):
    """Each test twice: the plain loopback listener and the TLS one (remote mode)."""
    return request.getfixturevalue("server" if request.param == "plain" else "tls_server")


def exchange(server, data: bytes, authenticated: bool = False) -> bytes:
    """Send ``data`` (after authenticating, if asked), half-close, and return everything the
    server sends until it closes."""
    sock = raw_connect(server, GUARD)
    with sock:
        if authenticated:
            authenticate(sock, read_token(), binding_of(server))
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            return b""  # the server may already have hung up: that is allowed
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def parse_replies(data: bytes, handshake: bool = True) -> list[P.Message]:
    """Whatever the server sent must itself be well-formed protocol."""
    if not data:
        return []
    stream = io.BytesIO(data)
    if handshake:
        assert P.read_handshake(stream) == P.PROTOCOL_VERSION
    replies = []
    while stream.tell() < len(data):
        replies.append(P.read_message(stream))
    return replies


def assert_server_alive(server) -> None:
    with client_of(server, GUARD) as client:
        assert client.ping() >= 0


FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(data=st.binary(max_size=64))
def test_random_bytes_before_the_handshake(server, data):
    replies = parse_replies(exchange(server, data))
    assert all(r.type == P.ERROR for r in replies)
    assert_server_alive(server)


@FUZZ
@given(frame=frames() | edit_frames())
def test_malformed_frames_after_authentication(server, frame):
    replies = parse_replies(exchange(server, frame, authenticated=True), handshake=False)
    event(" ".join(sorted({f"{r.type}:{r.get('code', '')}" for r in replies})) or "closed")
    for reply in replies:
        assert reply.type in (P.ERROR, P.QUEUED, P.PROGRESS, P.PONG, P.RESULT), reply
        if reply.type == P.ERROR:
            assert reply["code"] in P.ERROR_CODES
            assert reply["code"] != P.INTERNAL, reply  # no unhandled exception path
    assert_server_alive(server)


@FUZZ
@given(frame=frames())
def test_malformed_frames_instead_of_hello(server, frame):
    replies = parse_replies(exchange(server, P.encode_handshake() + frame))
    assert all(r.type in (P.ERROR, P.CHALLENGE) for r in replies)
    errors = [r for r in replies if r.type == P.ERROR]
    assert all(r["code"] in (P.AUTH_FAILED, P.TOO_LARGE, P.BAD_REQUEST) for r in errors)
    assert_server_alive(server)


def test_valid_edit_is_served_after_the_fuzzing(server):
    img, mask = rgba_image(4), box_mask(8, 6, 24, 18)
    with client_of(server, GUARD) as client:
        result = client.edit(png_bytes(img), "a", "b", png_bytes(mask), FAST, offset=(3, 4))
    out = png_array(result.parts["image"])
    assert np.array_equal(out[mask == 0], img[mask == 0])
    assert result["offset"] == [3, 4]
