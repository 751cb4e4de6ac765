"""The bridge server: listening socket, accept loop, connection limits, lifecycle and status.

Edits from every client go into the *same* JobQueue as the desktop app's, FIFO. Each
connection runs on its own thread (:mod:`.connection`); the server only admits, counts and
stops them. Nothing a client sends can stop the server: a connection's errors stay in its
thread, and the accept loop survives running out of descriptors (it backs off and keeps
accepting).

Security: binds 127.0.0.1 by default (anything else needs ``allow_remote=True``) and needs the
256-bit token from :func:`~.token.ensure_token` in the first message. The protocol is
specified in docs/bridge-protocol.md.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cds_desktop.engine import jobs as J
from cds_desktop.engine.models import DEMO_MODEL, describe_spec
from cds_desktop.engine.specs import DEFAULT_VAE_BACKEND
from plugin_bridge import protocol as P

from .connection import Connection
from .limits import ByteBudget, ServerLimits
from .requests import ModelChoice
from .session import ClientSession, Outgoing, error_message
from .token import TokenGuard

log = logging.getLogger(__name__)

DEFAULT_PORT = P.DEFAULT_PORT
DEFAULT_HOST = P.DEFAULT_HOST
SERVER_NAME = "cds-desktop"
#: longest pause of the accept loop after a failed accept() (e.g. out of descriptors)
MAX_ACCEPT_BACKOFF = 1.0
#: refused connections are closed after this long (or their EOF), at most MAX_REFUSALS kept
REFUSAL_LINGER_S = 1.0
MAX_REFUSALS = 64


class BridgeServerError(RuntimeError):
    """The server cannot start (port in use, remote host without allow_remote, ...)."""


@dataclass(frozen=True)
class BridgeStatus:
    running: bool
    host: str
    port: int | None
    clients: int
    jobs: int
    token_file: str | None


class BridgeServer:
    """The bridge: ``start()`` binds and serves on background threads, ``stop()`` ends it.

    ``queue`` is the engine JobQueue shared with the desktop app (the server never shuts it
    down). ``port=0`` binds a free port (tests); :attr:`port` is the bound one.
    ``on_status`` (optional) is called with a :class:`BridgeStatus` from server threads
    whenever the server starts/stops or a client connects/disconnects. ``model``, ``device``,
    ``dtype`` and ``vae_backend`` may be changed while running (the next edits use them).
    """

    def __init__(
        self,
        queue: J.JobQueue,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        model: str = DEMO_MODEL,
        token: str | None = None,
        allow_remote: bool = False,
        limits: ServerLimits = ServerLimits(),
        device: str = "auto",
        dtype: str = "auto",
        vae_backend: str = DEFAULT_VAE_BACKEND,
        token_file: Path | None = None,
        on_status: Callable[[BridgeStatus], None] | None = None,
    ) -> None:
        check_host(host, allow_remote)
        self.queue = queue
        self.host, self._requested_port = host, port
        self.model, self.device, self.dtype, self.vae_backend = model, device, dtype, vae_backend
        self.limits = limits
        self.on_status = on_status
        self.tokens = TokenGuard(token, token_file)
        self.budget = ByteBudget(limits.max_queued_bytes)
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._pending: set[Connection] = set()  # accepted, not authenticated yet
        self._clients: set[Connection] = set()  # authenticated
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> BridgeServer:
        if self._listener is not None:
            return self
        self.tokens.load()
        self._listener = bind_listener(self.host, self._requested_port)
        self._stopping.clear()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, args=(self._listener,), name="bridge-accept", daemon=True
        )
        self._accept_thread.start()
        log.info("bridge listening on %s:%d (model %s)", self.host, self.port, self.model)
        self._notify()
        return self

    def stop(self, timeout: float = 5.0, reason: str = "the server is stopping") -> None:
        """Stop accepting; tell each client with a running or queued job ``CANCELLED`` (and
        cancel it), close every connection and join their threads (within ``timeout``)."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        self._stopping.set()
        listener.close()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
        with self._lock:
            connections = list(self._pending | self._clients)
        for conn in connections:
            conn.stop(reason)
        deadline = time.monotonic() + timeout
        threads = [t for c in connections for t in c.threads()]
        _join(threads, deadline - timeout / 2)
        for conn in connections:  # a writer stuck on a client that does not read
            if any(t.is_alive() for t in conn.threads()):
                conn.abort()
        _join(threads, deadline)
        log.info("bridge stopped")
        self._notify()

    def __enter__(self) -> BridgeServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ status
    @property
    def running(self) -> bool:
        return self._listener is not None

    @property
    def port(self) -> int | None:
        listener = self._listener
        return listener.getsockname()[1] if listener is not None else None

    @property
    def client_count(self) -> int:
        """Authenticated clients."""
        with self._lock:
            return len(self._clients)

    @property
    def connection_count(self) -> int:
        """Open connections, also those still in the handshake."""
        with self._lock:
            return len(self._clients) + len(self._pending)

    @property
    def queue_length(self) -> int:
        return len(self.queue.pending()) + (self.queue.current is not None)

    @property
    def token_file(self) -> Path | None:
        return self.tokens.path

    def model_choice(self) -> ModelChoice:
        return ModelChoice(self.model, self.device, self.dtype, self.vae_backend)

    def status(self) -> BridgeStatus:
        with self._lock:
            clients = list(self._clients)
        jobs = sum(c.active_jobs for c in clients)
        token_file = str(self.token_file) if self.token_file else None
        return BridgeStatus(self.running, self.host, self.port, len(clients), jobs, token_file)

    def _notify(self) -> None:
        if self.on_status is not None:
            try:
                self.on_status(self.status())
            except Exception:  # noqa: BLE001
                log.exception("bridge status listener failed")

    # ------------------------------------------------------------------ Gate (connections)
    def authenticate(self, token: object, peer: str) -> bool:
        return self.tokens.check(token, peer)

    def admit(self, conn: Connection) -> None:
        with self._lock:
            if self._stopping.is_set():
                raise P.ProtocolError(P.BUSY, "the server is stopping")
            if len(self._clients) >= self.limits.max_clients:
                raise P.ProtocolError(P.BUSY, f"too many clients (max {self.limits.max_clients})")
            self._pending.discard(conn)
            self._clients.add(conn)
        self._notify()

    def welcome(self) -> P.Message:
        loaded = self.queue.model
        label = loaded.label if loaded is not None and loaded.spec == self.model else None
        return P.Message(
            P.WELCOME,
            None,
            server=f"{SERVER_NAME} {_version()}",
            protocol=P.PROTOCOL_VERSION,
            model=label or describe_spec(self.model),
            queue=self.queue_length,
            limits={
                "max_payload": self.limits.max_payload,
                "max_pixels": self.limits.max_pixels,
                "max_jobs": self.limits.max_jobs_per_client,
                "max_queued_bytes": self.limits.max_queued_bytes,
                "max_targets": self.limits.max_targets,
            },
        )

    def open_session(self, conn: Connection, send: Callable[[Outgoing], None]) -> ClientSession:
        return ClientSession(
            send,
            self.queue.submit,
            limits=self.limits,
            choice=self.model_choice,
            queue_length=lambda: self.queue_length,
            budget=self.budget,
            name=conn.name,
            tag=conn.id,
            origin=conn.client_name,
        )

    def leave(self, conn: Connection) -> None:
        with self._lock:
            was_client = conn in self._clients
            self._clients.discard(conn)
            self._pending.discard(conn)
        if was_client:
            log.info("%s disconnected", conn.name)
            self._notify()

    # ------------------------------------------------------------------ accept loop
    def _accept_loop(self, listener: socket.socket) -> None:
        refusals = _Refusals()
        try:
            self._accept_until_stopped(listener, refusals)
        finally:
            refusals.tend(closing=True)

    def _accept_until_stopped(self, listener: socket.socket, refusals: _Refusals) -> None:
        listener.settimeout(0.25)
        backoff = 0.0
        while not self._stopping.is_set():
            refusals.tend()
            try:
                sock, addr = listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stopping.is_set():
                    return
                if not backoff:  # once per episode
                    log.warning("accept failed (%s); retrying until it works again", exc)
                backoff = min(MAX_ACCEPT_BACKOFF, max(0.05, backoff * 2))
                self._stopping.wait(backoff)
                continue
            if backoff:
                log.info("accepting connections again")
                backoff = 0.0
            self._handle_new(sock, addr, refusals)

    def _handle_new(self, sock: socket.socket, addr, refusals: _Refusals) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(sock, addr, self, self.limits)
            with self._lock:
                full = len(self._pending) >= self.limits.max_pending
                if not full:
                    self._pending.add(conn)
            if full:
                message = (
                    f"too many connections waiting to authenticate (max "
                    f"{self.limits.max_pending}); try again later"
                )
                refusals.refuse(sock, message)
                return
            try:
                conn.start()
            except BaseException:
                with self._lock:
                    self._pending.discard(conn)
                raise
        except Exception:  # noqa: BLE001 - e.g. no thread left: drop this one, keep accepting
            log.exception("could not start a connection thread")
            sock.close()


class _Refusals:
    """Connections answered with a fatal BUSY by the accept thread itself (no thread each):
    the reply is sent without blocking, the write side closed, and the socket kept for
    REFUSAL_LINGER_S while what the client still sends is discarded, so that closing it
    does not reset the connection before the client has read the reply."""

    def __init__(self) -> None:
        self._socks: deque[tuple[float, socket.socket]] = deque()

    def refuse(self, sock: socket.socket, message: str) -> None:
        frame = P.encode_handshake() + P.encode_message(error_message(P.BUSY, message, fatal=True))
        try:
            sock.setblocking(False)
            sock.send(frame)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        if len(self._socks) >= MAX_REFUSALS:
            _, oldest = self._socks.popleft()
            oldest.close()
        self._socks.append((time.monotonic() + REFUSAL_LINGER_S, sock))

    def tend(self, closing: bool = False) -> None:
        """Discard incoming data; close the sockets whose time is up (all if ``closing``)."""
        now = time.monotonic()
        for _ in range(len(self._socks)):
            deadline, sock = self._socks.popleft()
            try:
                while sock.recv(65536):
                    pass
                eof = True
            except BlockingIOError:
                eof = False
            except OSError:
                eof = True
            if eof or closing or now >= deadline:
                sock.close()
            else:
                self._socks.append((deadline, sock))


def _join(threads: list[threading.Thread], deadline: float) -> None:
    for thread in threads:
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("cds-desktop")
    except Exception:  # noqa: BLE001
        return "dev"


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback host unless allow_remote; warn loudly when it is allowed."""
    if _is_loopback(host):
        return
    if not allow_remote:
        raise BridgeServerError(
            f"host {host!r} is not a loopback address: the bridge only listens on this "
            "computer (127.0.0.1) unless you also pass --allow-remote"
        )
    log.warning(
        "bridge listening on %s: any computer that can reach it and has the token can run "
        "edits; the connection is NOT encrypted",
        host,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_listener(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if os.name == "nt":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except OSError as exc:
        sock.close()
        if port and exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise BridgeServerError(
                f"port {port} on {host} is already in use (is another `cds-desktop --serve` "
                "running?): pick another with --port N"
            ) from None
        raise BridgeServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
