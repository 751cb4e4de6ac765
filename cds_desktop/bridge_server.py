"""Loopback TCP server that lets Krita/GIMP plug-ins run edits: plugin_bridge.protocol <->
engine.jobs.

Every connection gets a reader thread (handshake, hello/token, then requests) and a writer
thread (the only one that writes after the welcome, so the engine's worker thread never
blocks on a slow client). Edits from every client go into the *same* JobQueue as the desktop
app's, FIFO. A client that disconnects has its unfinished jobs cancelled. Nothing a client
sends can stop the server: every connection runs inside its own exception handler.

Security: binds 127.0.0.1 by default (anything else needs ``allow_remote=True``) and needs the
256-bit token from :func:`ensure_token` (a 0600 file in the user's config folder) in the
first message. The protocol is specified in docs/bridge-protocol.md.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import itertools
import json
import logging
import os
import queue as queue_mod
import secrets
import select
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from cds_desktop.engine import EditError, EditSettings
from cds_desktop.engine import jobs as J
from cds_desktop.engine.models import DEMO_MODEL, describe_spec
from plugin_bridge import protocol as P
from plugin_bridge.client import token_path
from plugin_bridge.pngcodec import PngError, encode_png, read_png_size

#: protocol error code for each kind of job failure
FAILURE_CODES = {
    J.FailureKind.USER_INPUT: P.EDIT_FAILED,
    J.FailureKind.MODEL: P.MODEL_ERROR,
    J.FailureKind.INTERNAL: P.INTERNAL,
    None: P.INTERNAL,
}

log = logging.getLogger(__name__)

DEFAULT_PORT = P.DEFAULT_PORT
DEFAULT_HOST = P.DEFAULT_HOST
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024
TOKEN_BYTES = 32
#: meta is echoed in the result header, which must stay under the 64 KiB header limit
MAX_META_BYTES = 16 * 1024
SERVER_NAME = "cds-desktop"


class BridgeServerError(RuntimeError):
    """The server cannot start (port in use, remote host without allow_remote, ...)."""


@dataclass(frozen=True)
class ServerLimits:
    max_header: int = P.MAX_HEADER_BYTES
    max_payload: int = P.DEFAULT_MAX_PAYLOAD
    #: decoded image size guard (checked from the PNG header before decoding)
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: close a connection with no request and no job in flight for this long
    idle_timeout: float = 300.0
    #: time allowed for the handshake and the hello
    handshake_timeout: float = 10.0
    #: a frame that has started must keep flowing; also the send timeout
    io_timeout: float = 60.0
    max_clients: int = 16
    max_jobs_per_client: int = 8
    #: at most one preview PNG per job per this many seconds
    preview_interval: float = 0.5
    max_prompt_chars: int = 4000

    @property
    def frame_limits(self) -> P.Limits:
        return P.Limits(max_header=self.max_header, max_payload=self.max_payload)


@dataclass(frozen=True)
class BridgeStatus:
    running: bool
    host: str
    port: int | None
    clients: int
    jobs: int
    token_file: str | None


# ----------------------------------------------------------------------------- token
def ensure_token(path: Path | None = None) -> str:
    """Read the bridge token, creating it (random 256 bits, mode 0600, atomically) if absent."""
    path = Path(path) if path is not None else token_path()
    existing = _read_existing_token(path)
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_hex(TOKEN_BYTES)
    fd, tmp = tempfile.mkstemp(prefix=".bridge-token.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(token + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        _install_token_file(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("created a new bridge token in %s", path)
    return _read_existing_token(path) or token


def _install_token_file(tmp: str, path: Path) -> None:
    """Link ``tmp`` to ``path`` without clobbering a token another process made meanwhile;
    replace only an empty/broken one."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        if not _read_existing_token(path):
            os.replace(tmp, path)
    except OSError:  # no hard links (e.g. FAT): atomic replace instead
        os.replace(tmp, path)


def _read_existing_token(path: Path) -> str | None:
    try:
        token = path.read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    if len(token) < 32:
        return None
    if os.name == "posix" and path.stat().st_mode & 0o077:
        log.warning("bridge token %s was readable by others; setting mode 0600", path)
        os.chmod(path, 0o600)
    return token


# ----------------------------------------------------------------------------- images
def decode_png_array(data: bytes, what: str, max_pixels: int, mode: str = "RGBA") -> np.ndarray:
    """PNG bytes -> uint8 array (RGBA, or L for gray masks). Raises P.ProtocolError."""
    try:
        width, height = read_png_size(data)
    except PngError as exc:
        raise P.ProtocolError(P.BAD_REQUEST, f"{what}: {exc}", fatal=False) from None
    if width * height > max_pixels:
        raise P.ProtocolError(
            P.TOO_LARGE,
            f"{what}: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}",
            fatal=False,
        )
    try:
        with Image.open(BytesIO(data), formats=["PNG"]) as img:
            if img.size != (width, height):
                raise ValueError(f"size {img.size} disagrees with the PNG header")
            img.load()
            if mode == "mask":
                mode = "L" if img.mode in ("1", "L", "I", "I;16") else "RGBA"
            return np.array(img.convert(mode))
    except P.ProtocolError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the client's bad PNG
        raise P.ProtocolError(
            P.BAD_REQUEST, f"{what}: not a readable PNG ({exc})", fatal=False
        ) from None


def encode_png_array(arr: np.ndarray) -> bytes:
    """(H, W, 3|4) uint8 -> PNG with filter type 0 (cheap to decode in plug-ins' pure Python)."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    return encode_png(arr.shape[1], arr.shape[0], arr.tobytes(), channels=arr.shape[2], level=1)


# ----------------------------------------------------------------------------- jobs
@dataclass
class _BridgeJob:
    client_id: str
    engine: J.Job | None = None
    offset: list = field(default_factory=lambda: [0, 0])
    meta: dict = field(default_factory=dict)
    size: tuple[int, int] = (0, 0)
    total: int | None = None
    started: bool = False
    last_preview: float = 0.0


class _Connection:
    """One client. The reader thread runs :meth:`run`; the writer thread drains ``outbox``."""

    _ids = itertools.count(1)

    def __init__(self, server: BridgeServer, sock: socket.socket, addr) -> None:
        self.server = server
        self.sock = sock
        self.addr = addr
        self.id = next(self._ids)
        self.stream = P.SocketStream(sock)
        self.outbox: queue_mod.Queue = queue_mod.Queue()
        self.jobs: dict[str, _BridgeJob] = {}
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.writer: threading.Thread | None = None
        self.thread: threading.Thread | None = None
        self.handshaken = False
        self.name = f"client#{self.id} {addr[0]}:{addr[1]}"
        self.client_name = "client"  # from the hello ("cds-krita", "cds-gimp", ...)

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> None:
        try:
            if self._open():
                self.server._register(self)
                try:
                    self._serve()
                finally:
                    self.server._unregister(self)
        except P.ConnectionClosed:
            log.debug("%s closed the connection", self.name)
        except P.NotProtocol as exc:
            log.info("%s rejected: %s", self.name, exc.message)
        except P.ProtocolError as exc:
            log.info("%s dropped: %s", self.name, exc)
            if self.handshaken:  # before our handshake reply, frames would be noise
                self._fatal(exc.code, exc.message)
        except OSError as exc:
            log.info("%s connection error: %s", self.name, exc)
        except Exception:  # noqa: BLE001 - never let one client take the server down
            if self.closed.is_set():  # e.g. select() on a socket stop() just closed
                log.debug("%s: error after close", self.name, exc_info=True)
            else:
                log.exception("%s: unexpected error; closing this connection", self.name)
                if self.handshaken:
                    self._fatal(P.INTERNAL, "unexpected server error; see the server log")
        finally:
            self._cancel_jobs()
            self._drain()
            self.close()
            self.server._forget(self)

    def _drain(self) -> None:
        """Let the writer send what is already queued (e.g. replies before the client's EOF)."""
        writer = self.writer
        if writer is not None and writer.is_alive() and not self.closed.is_set():
            self.outbox.put(None)
            writer.join(self.server.limits.io_timeout)

    def _open(self) -> bool:
        """Handshake + hello. True once the client is authenticated and welcomed."""
        limits = self.server.limits
        self.sock.settimeout(limits.handshake_timeout)
        try:
            version = P.read_handshake(self.stream)
        except P.ProtocolError as exc:
            raise P.NotProtocol(f"incomplete handshake ({exc.message})") from None
        P.write_handshake(self.stream, P.PROTOCOL_VERSION)
        self.handshaken = True
        if version != P.PROTOCOL_VERSION:
            raise P.ProtocolError(
                P.UNSUPPORTED_VERSION,
                f"client protocol {version}, server protocol {P.PROTOCOL_VERSION}",
            )
        first = P.read_message(self.stream, P.Limits(max_header=limits.max_header, max_payload=0))
        token = first.get("token") if first.type == P.HELLO else None
        if not isinstance(token, str) or not self.server._token_ok(token):
            log.warning("%s: authentication failed", self.name)
            raise P.ProtocolError(P.AUTH_FAILED, "missing or wrong token (see the token file)")
        if self.server.client_count >= limits.max_clients:
            raise P.ProtocolError(P.BUSY, f"too many clients (max {limits.max_clients})")
        self.client_name = str(first.get("client") or "client")[:80]
        log.info("%s connected (%s)", self.name, self.client_name)
        P.write_message(self.stream, self.server._welcome())
        self.writer = threading.Thread(
            target=self._write_loop, name=f"bridge-writer-{self.id}", daemon=True
        )
        self.writer.start()
        return True

    def _serve(self) -> None:
        limits = self.server.limits
        while not self.closed.is_set():
            ready, _, _ = select.select([self.sock], [], [], limits.idle_timeout)
            if not ready:
                if self.active_jobs:
                    continue
                self._fatal(P.TIMEOUT, f"idle for {limits.idle_timeout:g} s; reconnect to continue")
                return
            self.sock.settimeout(limits.io_timeout)
            message = P.read_message(self.stream, limits.frame_limits)
            self._dispatch(message)

    def _fatal(self, code: str, message: str) -> None:
        """Send a fatal error (best effort) and close."""
        msg = P.error(code, message, fatal=True)
        if self.writer is not None and self.writer.is_alive():
            self.outbox.put(msg)
            self.outbox.put(None)
            self.writer.join(self.server.limits.io_timeout)
        else:
            try:
                self.sock.settimeout(2.0)
                P.write_message(self.stream, msg)
            except OSError:
                pass
        self.close()

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self.outbox.put(None)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _cancel_jobs(self) -> None:
        with self.lock:
            jobs = [j.engine for j in self.jobs.values() if j.engine is not None]
        for job in jobs:
            log.info("%s gone: cancelling its job %s", self.name, job.id)
            job.cancel()

    @property
    def active_jobs(self) -> int:
        with self.lock:
            return len(self.jobs)

    # ------------------------------------------------------------------ writing
    def send(self, item) -> None:
        """Queue a Message (or a callable returning one, run on the writer thread)."""
        if not self.closed.is_set():
            self.outbox.put(item)

    def _write_loop(self) -> None:
        try:
            while True:
                item = self.outbox.get()
                if item is None:
                    return
                message = item() if callable(item) else item
                P.write_message(self.stream, message)
        except OSError as exc:
            log.info("%s: send failed (%s); closing", self.name, exc)
        except Exception:  # noqa: BLE001
            log.exception("%s: writer failed; closing", self.name)
        finally:
            self.closed.set()
            try:
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader
            except OSError:
                pass

    # ------------------------------------------------------------------ requests
    def _dispatch(self, msg: P.Message) -> None:
        try:
            handler = {
                P.EDIT: self._on_edit,
                P.CANCEL: self._on_cancel,
                P.PING: self._on_ping,
            }.get(msg.type)
            if handler is None:
                raise P.ProtocolError(
                    P.BAD_REQUEST,
                    f"unexpected message type {msg.type!r}; expected one of edit, cancel, ping",
                    fatal=False,
                )
            handler(msg)
        except P.ProtocolError as exc:
            if exc.fatal:
                raise
            self.send(P.error(exc.code, exc.message, job=msg.job))
        except Exception:  # noqa: BLE001
            log.exception("%s: failed to handle %s", self.name, msg.type)
            self.send(P.error(P.INTERNAL, "unexpected server error; see the log", job=msg.job))

    def _on_ping(self, msg: P.Message) -> None:
        self.send(P.Message(P.PONG, None, nonce=msg.get("nonce"), queue=self.server.queue_length))

    def _on_cancel(self, msg: P.Message) -> None:
        with self.lock:
            state = self.jobs.get(msg.job) if msg.job is not None else None
        if state is not None and state.engine is not None:
            log.info("%s cancels job %s", self.name, msg.job)
            state.engine.cancel()

    def _on_edit(self, msg: P.Message) -> None:
        job_id = msg.job
        if job_id is None:
            raise P.ProtocolError(P.BAD_REQUEST, "an edit needs a job id", fatal=False)
        with self.lock:
            if job_id in self.jobs:
                self.send(P.error(P.BAD_REQUEST, f"job id {job_id!r} is already in use"))
                return
            if len(self.jobs) >= self.server.limits.max_jobs_per_client:
                raise P.ProtocolError(
                    P.BUSY,
                    f"{len(self.jobs)} jobs already in flight on this connection "
                    f"(max {self.server.limits.max_jobs_per_client})",
                    fatal=False,
                )
            state = _BridgeJob(job_id)
            self.jobs[job_id] = state
        try:
            request = self.server._build_request(
                msg, state, tag=(self.id, job_id), origin=self.client_name
            )
            try:
                state.engine = self.server.queue.submit(request, self._listener(state))
            except RuntimeError as exc:  # the queue is shut down
                raise P.ProtocolError(
                    P.BUSY, f"the server is stopping ({exc})", fatal=False
                ) from None
        except BaseException:
            with self.lock:
                self.jobs.pop(job_id, None)
            raise

    # ------------------------------------------------------------------ engine events
    def _listener(self, state: _BridgeJob) -> Callable[[J.JobEvent], None]:
        def on_event(event: J.JobEvent) -> None:
            message = self._translate(state, event)
            if event.kind in J.FINAL:
                with self.lock:
                    self.jobs.pop(state.client_id, None)
                log.info("%s job %s: %s", self.name, state.client_id, event.kind)
            if message is not None:
                self.send(message)

        return on_event

    def _translate(self, state: _BridgeJob, event: J.JobEvent):
        job = state.client_id
        total = state.total
        if event.kind == J.QUEUED:
            return P.Message(
                P.QUEUED, job, position=event.position, message=event.message
            )
        if event.kind in (J.LOADING, J.STARTED):
            state.started = state.started or event.kind == J.STARTED
            stage = "loading" if event.kind == J.LOADING else "started"
            return P.Message(
                P.PROGRESS, job, stage=stage, step=0, total=total, message=event.message
            )
        if event.kind == J.PROGRESS:
            return self._progress_message(state, event.progress)
        if event.kind == J.DONE:
            return lambda: self._result_message(state, event.result)
        if event.kind == J.CANCELLED:
            return P.error(P.CANCELLED, event.message or "cancelled", job=job)
        return P.error(FAILURE_CODES[event.failure], event.error or "", job=job)

    def _progress_message(self, state: _BridgeJob, progress):
        fields = dict(
            stage="running",
            step=progress.step,
            total=progress.total,
            elapsed=round(progress.elapsed, 3),
            box=list(progress.box),
        )
        now = time.monotonic()
        interval = self.server.limits.preview_interval
        if progress.step >= progress.total or now - state.last_preview < interval:
            return P.Message(P.PROGRESS, state.client_id, **fields)
        state.last_preview = now

        def build() -> P.Message:
            preview = progress.preview()
            parts = {} if preview is None else {"preview": encode_png_array(preview)}
            return P.Message(P.PROGRESS, state.client_id, parts=parts, **fields)

        return build

    def _result_message(self, state: _BridgeJob, result) -> P.Message:
        return P.Message(
            P.RESULT,
            state.client_id,
            parts={"image": encode_png_array(result.image)},
            offset=state.offset,
            meta=state.meta,
            width=int(result.image.shape[1]),
            height=int(result.image.shape[0]),
            box=[int(v) for v in result.box],
            elapsed=round(result.elapsed, 3),
            steps=result.steps,
            model=result.model_label,
        )


# ----------------------------------------------------------------------------- server
class BridgeServer:
    """The bridge: ``start()`` binds and serves on background threads, ``stop()`` ends it.

    ``queue`` is the engine JobQueue shared with the desktop app (the server never shuts it
    down). ``port=0`` binds a free port (tests); :attr:`port` is the bound one.
    ``on_status`` (optional) is called with a :class:`BridgeStatus` from server threads
    whenever the server starts/stops or a client connects/disconnects.
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
        vae_backend: str = "torch",
        token_file: Path | None = None,
        on_status: Callable[[BridgeStatus], None] | None = None,
    ) -> None:
        check_host(host, allow_remote)
        self.queue = queue
        self.host, self._requested_port = host, port
        self.model, self.device, self.dtype, self.vae_backend = model, device, dtype, vae_backend
        self.limits = limits
        self.on_status = on_status
        self._token = token
        self._token_file = None if token is not None else (token_file or token_path())
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._connections: set[_Connection] = set()  # authenticated clients
        self._live: set[_Connection] = set()  # every open connection, also mid-handshake
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, limits.max_pixels)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> BridgeServer:
        if self._listener is not None:
            return self
        if self._token is None:
            self._token = ensure_token(self._token_file)
        self._listener = bind_listener(self.host, self._requested_port)
        self._stopping.clear()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="bridge-accept", daemon=True
        )
        self._accept_thread.start()
        log.info("bridge listening on %s:%d (model %s)", self.host, self.port, self.model)
        self._notify()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection (cancelling their jobs) and join threads."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        self._stopping.set()
        listener.close()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
        with self._lock:
            connections = list(self._live)
        for conn in connections:
            conn._cancel_jobs()
            conn.close()
        deadline = time.monotonic() + timeout
        for conn in connections:
            for thread in (conn.thread, conn.writer):
                if thread is not None and thread is not threading.current_thread():
                    thread.join(max(0.0, deadline - time.monotonic()))
        log.info("bridge stopped")
        self._notify()

    def serve_forever(self) -> None:
        """start() and block until stop() (from another thread) or Ctrl+C."""
        self.start()
        try:
            while self._listener is not None:
                time.sleep(0.2)
        finally:
            self.stop()

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
        with self._lock:
            return len(self._connections)

    @property
    def queue_length(self) -> int:
        return len(self.queue.pending()) + (self.queue.current is not None)

    @property
    def token_file(self) -> Path | None:
        return self._token_file

    def status(self) -> BridgeStatus:
        with self._lock:
            clients = len(self._connections)
            jobs = sum(c.active_jobs for c in self._connections)
        token_file = str(self._token_file) if self._token_file else None
        return BridgeStatus(self.running, self.host, self.port, clients, jobs, token_file)

    def _notify(self) -> None:
        if self.on_status is not None:
            try:
                self.on_status(self.status())
            except Exception:  # noqa: BLE001
                log.exception("bridge status listener failed")

    # ------------------------------------------------------------------ internals
    def _accept_loop(self) -> None:
        listener = self._listener
        listener.settimeout(0.25)
        while not self._stopping.is_set():
            try:
                sock, addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if not self._stopping.is_set():
                    log.exception("accept failed")
                return
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn = _Connection(self, sock, addr)
                with self._lock:
                    self._live.add(conn)
                conn.thread = threading.Thread(
                    target=conn.run, name=f"bridge-{conn.id}", daemon=True
                )
                conn.thread.start()
            except Exception:  # noqa: BLE001
                log.exception("could not start a connection thread")
                sock.close()

    def _register(self, conn: _Connection) -> None:
        with self._lock:
            self._connections.add(conn)
        self._notify()

    def _forget(self, conn: _Connection) -> None:
        with self._lock:
            self._live.discard(conn)

    def _unregister(self, conn: _Connection) -> None:
        with self._lock:
            self._connections.discard(conn)
        log.info("%s disconnected", conn.name)
        self._notify()

    def _token_ok(self, token: str) -> bool:
        return hmac.compare_digest(token.encode("utf-8"), (self._token or "").encode("utf-8"))

    def _welcome(self) -> P.Message:
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
            },
        )

    def _build_request(
        self, msg: P.Message, state: _BridgeJob, tag, origin: str = "client"
    ) -> J.EditRequest:
        """Validate an edit message into an EditRequest (raises non-fatal ProtocolError)."""
        source = _prompt(msg, "source", self.limits.max_prompt_chars)
        target = _prompt(msg, "target", self.limits.max_prompt_chars)
        settings = _settings(msg.get("settings"))
        state.offset = _offset(msg.get("offset"))
        meta = msg.get("meta", {})
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            raise _bad("meta must be a JSON object")
        meta_size = len(json.dumps(meta, ensure_ascii=False).encode("utf-8"))
        if meta_size > MAX_META_BYTES:
            raise _bad(f"meta is {meta_size} bytes of JSON (max {MAX_META_BYTES})")
        state.meta = meta
        unexpected = set(msg.parts) - {"image", "mask"}
        if unexpected:
            raise _bad(f"unexpected payload part(s) {sorted(unexpected)}; expected image, mask")
        if "image" not in msg.parts:
            raise _bad("an edit needs an 'image' part (PNG)")
        image = decode_png_array(msg.parts["image"], "image", self.limits.max_pixels)
        mask = None
        if "mask" in msg.parts:
            mask = decode_png_array(msg.parts["mask"], "mask", self.limits.max_pixels, "mask")
            if mask.shape[:2] != image.shape[:2]:
                raise _bad(
                    f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                    f"{image.shape[1]}x{image.shape[0]}"
                )
        state.size = (image.shape[1], image.shape[0])
        state.total = settings.steps
        return J.EditRequest(
            image=image,
            source_prompt=source,
            target_prompt=target,
            mask=mask,
            settings=settings,
            model=self.model,
            device=self.device,
            dtype=self.dtype,
            vae_backend=self.vae_backend,
            tag=("bridge",) + tuple(tag),
            origin=origin,
        )


def _bad(message: str) -> P.ProtocolError:
    return P.ProtocolError(P.BAD_REQUEST, message, fatal=False)


def _prompt(msg: P.Message, name: str, max_chars: int) -> str:
    text = msg.get(name)
    if not isinstance(text, str) or not text.strip():
        raise _bad(f"{name} must be a non-empty prompt string")
    if len(text) > max_chars:
        raise _bad(f"{name} is {len(text)} characters (max {max_chars})")
    return text


def _settings(data) -> EditSettings:
    if data is None:
        return EditSettings()
    if not isinstance(data, dict):
        raise _bad("settings must be a JSON object of EditSettings fields")
    try:
        return EditSettings.from_dict(data)
    except EditError as exc:
        raise _bad(f"settings: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise _bad(f"settings: {exc}") from None


def _offset(value) -> list[int]:
    if value is None:
        return [0, 0]
    ok = isinstance(value, list) and len(value) == 2
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if not ok:
        raise _bad(f"offset={value!r}: expected [x, y] integers")
    return list(value)


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
        sock.listen(16)
    except OSError as exc:
        sock.close()
        if port and exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise BridgeServerError(
                f"port {port} on {host} is already in use (is another `cds-desktop --serve` "
                "running?): pick another with --port N"
            ) from None
        raise BridgeServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


# ----------------------------------------------------------------------------- command line
def _serve_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="cds-desktop --serve",
        description="Headless bridge server for the Krita and GIMP plug-ins.",
    )
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    ap.add_argument("--model", default=os.environ.get("CDS_MODEL", DEMO_MODEL))
    ap.add_argument("--host", default=DEFAULT_HOST, help="default 127.0.0.1 (this computer)")
    ap.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --host (unencrypted!)"
    )
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    ap.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    ap.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return ap


def serve_main(argv: list[str] | None = None) -> int:
    """`cds-desktop --serve ...`: run the bridge headless until Ctrl+C. Returns an exit code."""
    argv = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--serve"]
    args = _serve_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    _quiet_library_warnings(args.log_level)
    if not 0 <= args.port <= 65535:
        return _fail(f"--port {args.port}: expected 0..65535")
    try:
        check_host(args.host, args.allow_remote)
        model = _load_model(args)
        job_queue = J.JobQueue(loader=_preloaded_loader(model, args))
        server = BridgeServer(
            job_queue, args.host, args.port, args.model, None, args.allow_remote,
            device=args.device, dtype=args.dtype,
        )  # fmt: skip
        try:
            server.start()
        except BaseException:
            job_queue.shutdown()
            raise
    except (BridgeServerError, EditError, OSError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    log.info("token file: %s (plug-ins read it; keep it private)", server.token_file)
    log.info("ready: model %s, port %d; press Ctrl+C to stop", model.label, server.port)
    return _wait_for_interrupt(server, job_queue)


def _load_model(args):
    from cds_desktop.engine.models import load_model

    log.info("loading model %s on %s ...", describe_spec(args.model), args.device)
    try:
        return load_model(args.model, device=args.device, dtype=args.dtype)
    except EditError:
        raise
    except Exception as exc:  # noqa: BLE001 - one line for the user, details in the log
        log.debug("model load failed", exc_info=True)
        first = (str(exc).strip().splitlines() or [""])[0]
        raise BridgeServerError(
            f"cannot load model {args.model!r}: {type(exc).__name__}: {first} "
            "(--log-level DEBUG shows details)"
        ) from None


def _quiet_library_warnings(level: str) -> None:
    """transformers prints import-time notices (e.g. about torchvision) to stderr; a headless
    server shows only its own log unless --log-level DEBUG."""
    if level == "DEBUG":
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "transformers" in sys.modules:
        logging.getLogger("transformers").setLevel(logging.ERROR)


def _preloaded_loader(model, args):
    from cds_desktop.engine.models import load_model

    def loader(spec, device="auto", dtype="auto", vae_backend="torch"):
        if (spec, device, dtype, vae_backend) == (args.model, args.device, args.dtype, "torch"):
            return model
        return load_model(spec, device=device, dtype=dtype, vae_backend=vae_backend)

    return loader


def _wait_for_interrupt(server: BridgeServer, job_queue: J.JobQueue) -> int:
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        while server.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        log.info("stopping ...")
    finally:
        server.stop()
        job_queue.shutdown(timeout=10.0)
    return 0


def _interrupt(signum, frame) -> None:
    """SIGTERM behaves like Ctrl+C: stop cleanly."""
    raise KeyboardInterrupt


def _fail(message: str) -> int:
    sys.stderr.write(f"cds-desktop --serve: error: {message}\n")
    return 2
