"""Tiny images and PNG helpers for the bridge tests (tests may use numpy/PIL)."""

from __future__ import annotations

import io
import socket

import numpy as np
from PIL import Image

from cds_desktop.bridge.tls import TLSSocket
from plugin_bridge import auth, pinning
from plugin_bridge import protocol as P
from plugin_bridge.client import BridgeClient

#: Settings that keep every edit in these tests to a fraction of a second.
FAST = {"steps": 2, "working_size": 32}


def rgba_image(seed: int, width: int = 32, height: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    img[..., 3] = rng.integers(128, 256, (height, width), dtype=np.uint8)
    return img


def box_mask(x0: int, y0: int, x1: int, y1: int, width: int = 32, height: int = 24) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[y0:y1, x0:x1] = 255
    return mask


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def png_array(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.array(img)


def raw_connect(server, timeout: float = 60.0):
    """A socket to ``server`` as a hand-written client sees it: plain TCP, or (remote mode)
    TLS with nothing sent yet; for TLS also the fingerprint a client would bind to."""
    sock = socket.create_connection((server.host, server.port), timeout=timeout)
    if server.tls is None:
        return sock
    return TLSSocket(sock, pinning.client_context(), server_side=False)


def binding_of(server) -> str:
    return server.tls.fingerprint if server.tls is not None else ""


def authenticate(sock, token: str, binding: str = "") -> P.Message:
    """Handshake + challenge-response by hand on ``sock``; returns the welcome."""
    stream = P.SocketStream(sock)
    P.write_handshake(stream)
    assert P.read_handshake(stream) == P.PROTOCOL_VERSION
    nonce = auth.new_nonce()
    P.write_message(stream, P.hello("test", nonce))
    challenge = P.read_message(stream)
    assert challenge.type == P.CHALLENGE, challenge
    assert auth.verify(
        challenge["proof"], token, auth.SERVER, nonce, challenge["nonce"], binding
    ), "the server's proof does not verify"
    proof = auth.proof(token, auth.CLIENT, nonce, challenge["nonce"], binding)
    P.write_message(stream, P.auth_reply(proof))
    welcome = P.read_message(stream)
    assert welcome.type == P.WELCOME, welcome
    return welcome


def client_of(server, timeout: float = 60.0, **kwargs) -> BridgeClient:
    """The stdlib client for ``server``; on a TLS server with its fingerprint given, as a
    user who copied it from the server's console."""
    if server.tls is not None:
        kwargs.setdefault("tls", True)
        kwargs.setdefault("fingerprint", server.tls.fingerprint)
    return BridgeClient(server.host, server.port, timeout=timeout, **kwargs)
