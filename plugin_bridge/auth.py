"""Mutual challenge-response authentication of the bridge (protocol version 2).

Neither side ever sends the token. Each side sends a fresh random nonce and proves that it
knows the token with an HMAC-SHA256 over *both* nonces, its role and the TLS certificate
fingerprint it sees (empty for a plain loopback connection)::

    client -> server   hello     {nonce: Nc}
    server -> client   challenge {nonce: Ns, proof: HMAC(token, "server" | Nc | Ns | binding)}
    client -> server   auth      {proof: HMAC(token, "client" | Nc | Ns | binding)}
    server -> client   welcome

The client checks the server's proof *before* it sends its own, so a program squatting the
port learns only a random nonce and the client never talks to a server that cannot prove it
knows the token. The role label keeps one side's proof from being replayed as the other's;
the fresh nonces keep old proofs from being replayed; the certificate fingerprint in the MAC
("channel binding") makes a proof useless through a TLS man in the middle, whose certificate
differs from the server's.

Standard library only, Python 3.8+ (it runs inside Krita's and GIMP's Python).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

NONCE_BYTES = 32
#: what a peer's nonce must look like (lowercase or uppercase hex, 128..512 bits)
NONCE_FORMAT = re.compile(r"[0-9a-fA-F]{32,128}")
PROOF_FORMAT = re.compile(r"[0-9a-f]{64}")
SERVER, CLIENT = "server", "client"
LABEL = "cds-bridge-auth-v2"


def new_nonce() -> str:
    """A fresh random nonce (256 bits, hex)."""
    return secrets.token_hex(NONCE_BYTES)


def valid_nonce(value: object) -> bool:
    return isinstance(value, str) and NONCE_FORMAT.fullmatch(value) is not None


def proof(token: str, role: str, client_nonce: str, server_nonce: str, binding: str = "") -> str:
    """HMAC-SHA256 (hex) with which ``role`` proves it knows ``token`` on this connection."""
    if role not in (SERVER, CLIENT):
        raise ValueError(f"role must be {SERVER!r} or {CLIENT!r}, not {role!r}")
    message = "|".join((LABEL, role, client_nonce, server_nonce, binding)).encode("ascii")
    key = token.encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def verify(
    candidate: object,
    token: str,
    role: str,
    client_nonce: str,
    server_nonce: str,
    binding: str = "",
) -> bool:
    """True if ``candidate`` is ``role``'s proof for these nonces (constant-time compare)."""
    if not isinstance(candidate, str) or not PROOF_FORMAT.fullmatch(candidate):
        return False
    expected = proof(token, role, client_nonce, server_nonce, binding)
    return hmac.compare_digest(candidate.encode("ascii"), expected.encode("ascii"))
