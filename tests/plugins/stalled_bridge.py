"""A bridge that knows the token (``"t" * 64`` unless told) and authenticates like the real
one (challenge-response), then misbehaves: ``silent`` reads every
request and never answers again (alive but stuck), ``close`` hangs up after the edit arrives
(killed mid-edit). Real sockets on 127.0.0.1, the real protocol module."""

from __future__ import annotations

import socket
import threading

from plugin_bridge import auth
from plugin_bridge import protocol as p

TOKEN = "t" * 64


class StalledBridge:
    def __init__(self, mode: str = "silent", token: str = TOKEN) -> None:
        assert mode in ("silent", "close"), mode
        self.mode, self.token = mode, token
        self.received: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> StalledBridge:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._listener.close()
        for sock in self._open:
            sock.close()
        self._thread.join(5)

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self._open.append(sock)
            threading.Thread(target=self._talk, args=(sock,), daemon=True).start()

    def _talk(self, sock: socket.socket) -> None:
        stream = p.SocketStream(sock)
        try:
            p.read_handshake(stream)
            p.write_handshake(stream)
            nonce = p.read_message(stream)["nonce"]  # hello
            mine = auth.new_nonce()
            proof = auth.proof(self.token, auth.SERVER, nonce, mine)
            p.write_message(stream, p.challenge(mine, proof))
            p.read_message(stream)  # auth: any proof will do
            p.write_message(stream, p.Message(p.WELCOME, None, protocol=p.PROTOCOL_VERSION))
            while True:
                msg = p.read_message(stream)
                self.received.append(msg.type)
                if msg.type == p.EDIT and self.mode == "close":
                    sock.close()
                    return
        except (p.ProtocolError, OSError):
            sock.close()
