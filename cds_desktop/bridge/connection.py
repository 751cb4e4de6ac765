"""One client connection: handshake and hello under one total deadline, then a reader loop
(requests -> :class:`ClientSession`) and a writer thread (the only one writing after the
welcome, so the engine's worker never blocks on a slow client).

The connection talks to its server only through the :class:`Gate` it is given (public
methods); the server talks to it only through :meth:`Connection.start`, :meth:`stop` and
:meth:`abort`.
"""

from __future__ import annotations

import itertools
import logging
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from plugin_bridge import protocol as P

from .limits import ServerLimits
from .session import ClientSession, Deferred, Outgoing, error_message, is_droppable

log = logging.getLogger(__name__)

#: a slow reader misses progress updates once this many messages wait for it
DROP_PROGRESS_AT = 4
#: how often a waiting reader checks whether its connection is ending
POLL_S = 0.25
#: closing: read (and discard) what the client still sends for this long, so the kernel
#: closes with FIN after our last message instead of a reset that could destroy it
LINGER_S = 0.5
LINGER_BYTES = 1 << 20


class Gate(Protocol):
    """What a connection needs from its server."""

    def authenticate(self, token: object, peer: str) -> bool: ...

    def admit(self, conn: Connection) -> None:
        """Count ``conn`` as a client, or raise P.ProtocolError(BUSY) (atomically)."""

    def welcome(self) -> P.Message: ...

    def open_session(self, conn: Connection, send: Callable[[Outgoing], None]) -> ClientSession: ...

    def leave(self, conn: Connection) -> None:
        """``conn`` is closed (called once, whether or not it was admitted)."""


class Outbox:
    """Messages waiting for the writer. Progress updates are dropped for a slow reader;
    everything else is kept (the reader stops reading requests while it is full)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[Outgoing] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Outgoing) -> None:
        with self._cond:
            if self._closed:
                return
            if is_droppable(item) and len(self._items) >= DROP_PROGRESS_AT:
                self.dropped += 1
                return
            self._items.append(item)
            self._cond.notify_all()

    def get(self) -> Outgoing | None:
        """The next item; None once closed and empty."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def wait_for_room(self, timeout: float) -> bool:
        """Block until fewer than ``capacity`` items wait. False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: len(self._items) < self.capacity or self._closed, timeout
            )

    def close(self) -> None:
        """No more items; the writer sends what is queued, then ends."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _DeadlineStream:
    """read/write on a socket where every operation ends by ``deadline`` (time.monotonic)."""

    def __init__(self, sock: socket.socket, deadline: float, what: str) -> None:
        self.sock, self.deadline, self.what = sock, deadline, what

    def _arm(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(self.what)
        self.sock.settimeout(remaining)

    def read(self, n: int) -> bytes:
        self._arm()
        return self.sock.recv(min(n, P.SocketStream.CHUNK))

    def write(self, data: bytes) -> None:
        self._arm()
        self.sock.sendall(data)


class Connection:
    _ids = itertools.count(1)

    def __init__(self, sock: socket.socket, addr, gate: Gate, limits: ServerLimits) -> None:
        self.sock = sock
        self.gate = gate
        self.limits = limits
        self.id = next(self._ids)
        self.name = f"client#{self.id} {addr[0]}:{addr[1]}"
        self.client_name = "client"  # what the hello calls it: "cds-krita", "cds-gimp", ...
        self.stream = P.SocketStream(sock)
        self.outbox = Outbox(limits.max_outbox)
        self.session: ClientSession | None = None
        self.thread: threading.Thread | None = None
        self.writer: threading.Thread | None = None
        self._handshaken = False
        self._stopping = threading.Event()
        self._sock_lock = threading.Lock()
        self._sock_closed = False

    # ------------------------------------------------------------------ server side
    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"bridge-{self.id}", daemon=True)
        self.thread.start()

    def stop(self, reason: str) -> None:
        """End gracefully: each job gets its final CANCELLED, queued messages are sent, then
        the socket closes (the reader thread wakes and finishes)."""
        self._stopping.set()
        session = self.session
        if session is not None:
            session.end_all(reason)
        self.outbox.close()
        if self.writer is None:
            self._shutdown_socket()

    def abort(self) -> None:
        """End now (a writer stuck on a client that does not read)."""
        self._stopping.set()
        self.outbox.close()
        self._shutdown_socket()

    def threads(self) -> list[threading.Thread]:
        return [t for t in (self.thread, self.writer) if t is not None]

    @property
    def active_jobs(self) -> int:
        session = self.session
        return session.active_jobs if session is not None else 0

    # ------------------------------------------------------------------ reader thread
    def _run(self) -> None:
        try:
            session = self._open()
            try:
                self._serve(session)
            finally:
                session.cancel_all()
        except P.ConnectionClosed:
            log.debug("%s closed the connection", self.name)
        except P.NotProtocol as exc:
            self._log_end("%s rejected: %s", self.name, exc.message)
        except P.ProtocolError as exc:
            self._log_end("%s dropped: %s", self.name, exc)
            if self._handshaken:  # before our handshake reply, frames would be noise
                self._fatal(exc.code, exc.message)
        except OSError as exc:
            if not self._stopping.is_set():
                self._log_end("%s connection error: %s", self.name, exc)
        except Exception:  # noqa: BLE001 - never let one client take the server down
            if self._stopping.is_set() or self._sock_closed:
                log.debug("%s: error after close", self.name, exc_info=True)
            else:
                log.exception("%s: unexpected error; closing this connection", self.name)
                if self._handshaken:
                    self._fatal(P.INTERNAL, "unexpected server error; see the server log")
        finally:
            self._finish_writer()
            self._close_socket()
            self.gate.leave(self)

    def _log_end(self, fmt: str, *args) -> None:
        """INFO for clients that authenticated; DEBUG before that, so that unauthenticated
        connections cannot flood the log (failed authentications are logged, rate-limited,
        by the token guard)."""
        log.log(logging.INFO if self.session is not None else logging.DEBUG, fmt, *args)

    def _open(self) -> ClientSession:
        """Handshake + hello within ``handshake_timeout`` in total; then admit and welcome."""
        limits = self.limits
        stream = _DeadlineStream(
            self.sock,
            time.monotonic() + limits.handshake_timeout,
            f"no handshake and hello within {limits.handshake_timeout:g} s",
        )
        try:
            version = P.read_handshake(stream)
        except (P.ProtocolError, OSError) as exc:
            raise P.NotProtocol(f"incomplete handshake ({exc})") from None
        P.write_handshake(stream, P.PROTOCOL_VERSION)
        self._handshaken = True
        if version != P.PROTOCOL_VERSION:
            raise P.ProtocolError(
                P.UNSUPPORTED_VERSION,
                f"client protocol {version}, server protocol {P.PROTOCOL_VERSION}",
            )
        first = self._read_hello(stream)
        if not self.gate.authenticate(first.get("token"), self.name):
            raise P.ProtocolError(P.AUTH_FAILED, "missing or wrong token (see the token file)")
        self.gate.admit(self)
        self.client_name = str(first.get("client") or "client")[:80]
        log.info("%s connected (%s)", self.name, self.client_name)
        P.write_message(stream, self.gate.welcome())
        self.sock.settimeout(limits.io_timeout)
        self.session = self.gate.open_session(self, self.outbox.put)
        self.writer = threading.Thread(
            target=self._write_loop, name=f"bridge-writer-{self.id}", daemon=True
        )
        self.writer.start()
        return self.session

    def _read_hello(self, stream: _DeadlineStream) -> P.Message:
        """The first frame: a hello, or AUTH_FAILED whatever else it is (or TIMEOUT)."""
        limits = P.Limits(max_header=self.limits.max_header, max_payload=0)
        try:
            first = P.read_message(stream, limits)
        except P.ConnectionClosed:
            raise
        except TimeoutError as exc:
            raise P.ProtocolError(P.TIMEOUT, str(exc) or "handshake timed out") from None
        except P.ProtocolError as exc:
            raise P.ProtocolError(
                P.AUTH_FAILED, f"the first message must be a hello with the token ({exc.message})"
            ) from None
        if first.type != P.HELLO:
            raise P.ProtocolError(
                P.AUTH_FAILED, f"the first message must be a hello, not {first.type[:40]!r}"
            )
        return first

    def _serve(self, session: ClientSession) -> None:
        limits = self.limits
        while True:
            if not self.outbox.wait_for_room(limits.io_timeout):
                raise P.ProtocolError(
                    P.TIMEOUT, f"the client did not read replies for {limits.io_timeout:g} s"
                )
            if not self._wait_for_request(session):
                return
            self.sock.settimeout(limits.io_timeout)
            message = P.read_message(self.stream, limits.frame_limits)
            session.handle(message)

    def _wait_for_request(self, session: ClientSession) -> bool:
        """True when a frame starts arriving; False when the connection should end (stopping,
        writer gone, or idle too long without a job in flight)."""
        idle = self.limits.idle_timeout
        deadline = time.monotonic() + idle
        while not self._stopping.is_set() and self.writer is not None and self.writer.is_alive():
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.sock], [], [], max(0.0, min(POLL_S, remaining)))
            if ready:
                return True
            if time.monotonic() >= deadline:
                if session.active_jobs:
                    deadline = time.monotonic() + idle
                    continue
                self._fatal(P.TIMEOUT, f"idle for {idle:g} s; reconnect to continue")
                return False
        return False

    def _fatal(self, code: str, message: str) -> None:
        """Send a fatal error (best effort) after what is queued, then stop writing."""
        msg = error_message(code, message, fatal=True)
        if self.writer is not None and self.writer.is_alive():
            self.outbox.put(msg)
            self.outbox.close()
        else:
            self._send_now(msg)

    def _send_now(self, msg: P.Message) -> None:
        try:
            self.sock.settimeout(2.0)
            P.write_message(self.stream, msg)
        except (OSError, ValueError):
            pass

    def _finish_writer(self) -> None:
        """Let the writer send what is queued (e.g. replies before the client's EOF)."""
        self.outbox.close()
        writer = self.writer
        if writer is not None and writer is not threading.current_thread():
            writer.join(self.limits.io_timeout)

    # ------------------------------------------------------------------ writer thread
    def _write_loop(self) -> None:
        broken = False
        try:
            while True:
                item = self.outbox.get()
                if item is None:
                    break
                try:
                    message = item.build() if isinstance(item, Deferred) else item
                    header = P.encode_header(message)
                except Exception:  # noqa: BLE001 - a reply we cannot build: a server bug
                    log.exception("%s: cannot build a reply; closing", self.name)
                    self._send_now(
                        error_message(P.INTERNAL, "server error building a reply", fatal=True)
                    )
                    break
                self.stream.write(header)
                for data in message.parts.values():
                    if data:
                        self.stream.write(data)
        except OSError as exc:
            broken = True
            if not self._stopping.is_set():
                log.info("%s: send failed (%s); closing", self.name, exc)
        except Exception:  # noqa: BLE001
            broken = True
            log.exception("%s: writer failed; closing", self.name)
        finally:
            self.outbox.close()
            if broken:
                self._shutdown_socket()  # wake the reader now
            else:
                self._half_close()  # the client sees EOF after our last message

    # ------------------------------------------------------------------ socket
    def _shutdown_socket(self) -> None:
        with self._sock_lock:
            if self._sock_closed:
                return
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _half_close(self) -> None:
        with self._sock_lock:
            if not self._sock_closed:
                try:
                    self.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def _close_socket(self) -> None:
        """Half-close, discard what the client still sends (briefly), then close."""
        with self._sock_lock:
            if self._sock_closed:
                return
            self._sock_closed = True
        sock = self.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            deadline, received = time.monotonic() + LINGER_S, 0
            while received < LINGER_BYTES:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                sock.settimeout(remaining)
                data = sock.recv(65536)
                if not data:
                    break
                received += len(data)
        except OSError:
            pass
        finally:
            sock.close()
