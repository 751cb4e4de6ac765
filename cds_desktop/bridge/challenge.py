"""The server's side of the mutual challenge-response (the maths is
:mod:`plugin_bridge.auth`, shared with the client).

After the client's ``hello {nonce}`` the server answers ``challenge {nonce, proof}`` (its own
fresh nonce and its proof that it knows the token) and expects ``auth {proof}``, the client's
proof, checked in constant time by the :class:`~.token.TokenGuard`. ``binding`` is the
server certificate's fingerprint on a TLS listener, "" on plain loopback TCP.
"""

from __future__ import annotations

from collections.abc import Callable

from plugin_bridge import auth
from plugin_bridge import protocol as P

from .token import TokenGuard


def authenticate(
    hello: P.Message,
    exchange: Callable[[P.Message], P.Message],
    guard: TokenGuard,
    binding: str,
    peer: str,
) -> None:
    """Run the exchange after ``hello``. ``exchange(msg)`` sends ``msg`` and returns the
    client's next frame (an ``auth``). Raises P.ProtocolError(AUTH_FAILED) on failure."""
    client_nonce = hello.get("nonce")
    if not auth.valid_nonce(client_nonce):
        guard.failed(peer)
        if "token" in hello:
            raise P.ProtocolError(
                P.AUTH_FAILED,
                "this client sends its token in the hello (protocol 1): update the plug-in",
            )
        raise P.ProtocolError(P.AUTH_FAILED, "the hello has no valid nonce (32..128 hex digits)")
    server_nonce = auth.new_nonce()
    proof = guard.prove(client_nonce, server_nonce, binding)
    reply = exchange(P.challenge(server_nonce, proof))
    if not guard.verify(reply.get("proof"), client_nonce, server_nonce, binding, peer):
        raise P.ProtocolError(
            P.AUTH_FAILED, "wrong token: the client's proof does not match (see the token file)"
        )
