"""Blocking client of the cds-desktop bridge, standard library only.

Used by the Krita and GIMP plug-ins (inside their own Python) and by the tests::

    from plugin_bridge.client import BridgeClient

    with BridgeClient() as client:              # token read from token_path()
        job = client.submit_edit(png, "a cat", "a dog", mask_png=mask, meta={"layer": "L1"})
        for msg in client.events(job):          # queued, progress..., then result or error
            if msg.type == "progress":
                print(msg["step"], msg["total"])
        # msg is the final message: msg.type == "result" -> msg.parts["image"] is the PNG

Several target prompts run as one shared edit with one result holding an image per target::

        result = client.edit(png, "a cat", ["a pig", "a cow", "a dog"])
        pngs = protocol.result_images(result)   # one PNG per target, in order

A Qt plug-in that must stay responsive calls ``client.poll(0)`` from a QTimer instead of
iterating ``events``. One client object is meant for one thread.

Command line (PNG in, PNG out; the image is sent as-is, the results written atomically)::

    python -m plugin_bridge.client IMAGE.png --source "a cat" --target "a dog" -o OUT.png
    python -m plugin_bridge.client IMAGE.png --source "a cat" --target "a pig" \
        --target "a cow" -o OUT.png          # one run: OUT-1-a-pig.png, OUT-2-a-cow.png

A bridge on another computer (``cds-desktop --serve --remote``) is reached over TLS: pass its
host (and, the first time, the fingerprint it printed; otherwise the first certificate seen
is pinned, see :mod:`.pinning`) and give the token with ``$CDS_BRIDGE_TOKEN`` or
``--token-file``.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import select
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from . import auth, config, pinning
from . import protocol as p
from .config import config_dir, token_path  # noqa: F401 - public names of this module
from .fileio import write_bytes_atomic
from .pngcodec import PngError, read_png_size

DEFAULT_PORT = p.DEFAULT_PORT
DEFAULT_TIMEOUT = 30.0
APP_NAME = config.APP_NAME
TOKEN_FILE = config.TOKEN_FILE
START_HINT = "start it with `cds-desktop --serve`"
REMOTE_START_HINT = "start it on that computer with `cds-desktop --serve --remote ADDRESS`"

#: Longest single wait on the socket: a blocking select()/recv() does not wake for Ctrl+C on
#: Windows, so every wait is cut into slices of this many seconds (Python handles signals
#: between them).
WAIT_SLICE = 0.25

# Client-side error codes (never sent by the server).
NOT_RUNNING = "NOT_RUNNING"
NO_TOKEN = "NO_TOKEN"
CONNECTION_LOST = "CONNECTION_LOST"
#: the server's TLS certificate is not the pinned/expected one
FINGERPRINT_MISMATCH = "FINGERPRINT_MISMATCH"


class BridgeError(Exception):
    """Anything that went wrong talking to the bridge: ``code`` is a protocol error code
    (AUTH_FAILED, BAD_REQUEST, ...) or a client-side one (NOT_RUNNING, NO_TOKEN,
    CONNECTION_LOST, TIMEOUT); ``str(exc)`` is a one-line message for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ----------------------------------------------------------------------------- token
def read_token(path: str | os.PathLike | None = None) -> str:
    """The bridge token: from ``path`` if given, else ``$CDS_BRIDGE_TOKEN`` if set, else the
    token file (:func:`token_path`; on Windows also the pre-2 roaming location). Raises
    BridgeError(NO_TOKEN) with a hint."""
    if path is None:
        from_env = os.environ.get(config.TOKEN_ENV, "").strip()
        if from_env:
            return from_env
        path = token_path()
        legacy = config.legacy_token_path()
        if legacy is not None and not path.exists() and legacy.exists():
            path = legacy
    path = Path(path)
    try:
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise BridgeError(NO_TOKEN, f"no bridge token at {path}: {START_HINT}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BridgeError(NO_TOKEN, f"cannot read the bridge token {path}: {exc}") from None
    if not token:
        raise BridgeError(NO_TOKEN, f"the bridge token file {path} is empty: {START_HINT}")
    return token


# ----------------------------------------------------------------------------- client
class BridgeClient:
    """One connection to the bridge. Methods block at most ``timeout`` seconds per
    network operation, except :meth:`events`/:meth:`edit` which wait for the job."""

    def __init__(
        self,
        host: str = p.DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        client_name: str = "plugin_bridge.client",
        limits: p.Limits = p.Limits(),
        tls: bool | None = None,
        fingerprint: str | None = None,
        pins: pinning.PinStore | None = None,
    ) -> None:
        """``tls``: None = TLS exactly when ``host`` is not a loopback address (a bridge on
        another computer always uses TLS). ``fingerprint``: the server certificate's SHA-256
        as the server printed it; without it the first certificate seen is pinned in
        ``pins`` (default: known-bridges.json in the config folder) and must match later."""
        self.host, self.port, self.timeout = host, port, timeout
        self.tls = (not config.is_loopback(host)) if tls is None else bool(tls)
        self.fingerprint = fingerprint
        self.pins = pins
        #: the server certificate's fingerprint (TLS only), and whether it was pinned just now
        self.server_fingerprint: str | None = None
        self.pinned_now = False
        self.client_name = client_name
        self.limits = limits
        self._token = token
        self._sock: socket.socket | None = None
        self._stream: p.SocketStream | None = None
        self._backlog: collections.deque[p.Message] = collections.deque()
        self.welcome: p.Message | None = None

    # ------------------------------------------------------------------ connection
    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> p.Message:
        """Open the connection, handshake and authenticate. Returns the welcome message."""
        if self._sock is not None:
            return self.welcome
        token = self._token if self._token is not None else read_token()
        if not self.tls and not config.is_loopback(self.host):  # checked before any traffic
            raise BridgeError(
                p.BAD_REQUEST, f"{self.host} is not this computer: a remote bridge needs TLS"
            )
        hint = START_HINT if config.is_loopback(self.host) else REMOTE_START_HINT
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except ConnectionRefusedError:
            raise BridgeError(
                NOT_RUNNING, f"no cds-desktop bridge at {self.host}:{self.port}: {hint}"
            ) from None
        except OSError as exc:
            raise BridgeError(
                NOT_RUNNING, f"cannot reach {self.host}:{self.port} ({exc}): {hint}"
            ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        binding = ""
        if self.tls:  # ---- TLS + certificate pinning (remote bridges): before any byte
            sock, binding = self._secure(sock)
        self._sock, self._stream = sock, _SlicedStream(sock)
        try:
            self.welcome = self._authenticate(token, binding)
        except BaseException:
            self.close()
            raise
        return self.welcome

    def _secure(self, sock: socket.socket):
        """TLS handshake and pin check. Returns (TLS socket, channel binding)."""
        import ssl

        where = f"{self.host}:{self.port}"
        try:
            tls_sock = pinning.client_context().wrap_socket(sock)
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise BridgeError(
                CONNECTION_LOST,
                f"TLS handshake with {where} failed ({exc}): is it a `cds-desktop --serve "
                "--remote` bridge? (a bridge on this computer without --remote: use 127.0.0.1)",
            ) from None
        try:
            der = tls_sock.getpeercert(binary_form=True) or b""
            store = self.pins if self.pins is not None else pinning.PinStore()
            self.pinned_now = pinning.check(der, self.host, self.port, self.fingerprint, store)
        except pinning.PinError as exc:
            tls_sock.close()
            raise BridgeError(FINGERPRINT_MISMATCH, str(exc)) from None
        self.server_fingerprint = pinning.fingerprint(der)
        return tls_sock, self.server_fingerprint

    def _authenticate(self, token: str, binding: str = "") -> p.Message:
        """Handshake, then the mutual challenge-response of :mod:`.auth`: the token itself is
        never sent, and nothing is sent that depends on it before the server has proved it
        knows it too."""
        self._guard(lambda: p.write_handshake(self._stream))
        version = self._guard(lambda: p.read_handshake(self._stream))
        if version != p.PROTOCOL_VERSION:
            raise BridgeError(
                p.UNSUPPORTED_VERSION,
                f"the bridge speaks protocol {version}, this client {p.PROTOCOL_VERSION}: "
                "update the plug-in or cds-desktop",
            )
        nonce = auth.new_nonce()
        self._send(p.hello(self.client_name, nonce))
        challenge = self._expect(p.CHALLENGE, "the hello")
        server_nonce = challenge.get("nonce")
        if not auth.valid_nonce(server_nonce) or not auth.verify(
            challenge.get("proof"), token, auth.SERVER, nonce, server_nonce, binding
        ):
            self.close()
            raise BridgeError(
                p.AUTH_FAILED,
                f"{p.AUTH_FAILED}: the program at {self.host}:{self.port} could not prove it "
                "knows the bridge "
                "token: the token you have is not this bridge's (copy it again), or another "
                "program holds the port",
            )
        proof = auth.proof(token, auth.CLIENT, nonce, server_nonce, binding)
        self._send(p.auth_reply(proof))
        return self._expect(p.WELCOME, "the authentication")

    def _expect(self, kind: str, after: str) -> p.Message:
        reply = self._read(self.timeout)
        if reply is None:
            raise BridgeError(p.TIMEOUT, f"the bridge did not answer {after}")
        _raise_if_error(reply)
        if reply.type != kind:
            raise BridgeError(p.BAD_REQUEST, f"expected {kind}, got {reply.type!r}")
        return reply

    def close(self) -> None:
        """Close the connection; the server cancels this connection's unfinished jobs."""
        sock, self._sock, self._stream = self._sock, None, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self) -> BridgeClient:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ requests
    def ping(self) -> float:
        """Round trip to the server; returns the seconds it took."""
        self._refresh()
        self.connect()
        nonce = uuid.uuid4().hex[:8]
        started = time.monotonic()
        self._send(p.ping(nonce))
        deadline = started + self.timeout
        while True:
            msg = self._read(max(0.0, deadline - time.monotonic()), stash=False)
            if msg is None:
                raise BridgeError(p.TIMEOUT, f"no pong within {self.timeout:g} s")
            if msg.type == p.PONG and msg.get("nonce") == nonce:
                return time.monotonic() - started
            self._backlog.append(msg)

    def submit_edit(
        self,
        image_png: bytes,
        source: str,
        target: str | Sequence[str],
        mask_png: bytes | None = None,
        settings: dict | None = None,
        meta: dict | None = None,
        offset: tuple[int, int] = (0, 0),
    ) -> str:
        """Send an edit; returns its job id. ``meta`` (any JSON object, e.g. the layer name)
        and ``offset`` (the layer's x, y) come back unchanged in the result.

        ``target`` is one prompt, or a list of prompts edited in one shared run (one result
        with an image per target: :func:`plugin_bridge.protocol.result_images`). A list of
        one is sent as a single ``target``, which every server accepts."""
        if not isinstance(target, str):
            target = list(target)
            if len(target) == 1:
                target = target[0]
        self._refresh()
        self.connect()
        if not isinstance(target, str) and self.max_targets < 2:
            raise BridgeError(
                p.BAD_REQUEST,
                f"the bridge at {self.host}:{self.port} edits one target per run (an older "
                f"cds-desktop): update cds-desktop, or send the {len(target)} targets one by one",
            )
        job = uuid.uuid4().hex[:16]
        self._send(p.edit(job, image_png, source, target, mask_png, settings, meta, offset))
        return job

    @property
    def max_targets(self) -> int:
        """Target prompts the connected server takes in one edit (1 for servers that do not
        say: they predate multi-target edits)."""
        limits = (self.welcome or {}).get("limits")
        value = limits.get("max_targets") if isinstance(limits, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else 1

    def cancel(self, job_id: str) -> None:
        """Ask the server to stop a job; its final message will be error CANCELLED
        (or its result, if it finished first)."""
        if self._sock is not None:
            self._send(p.cancel(job_id))

    def poll(self, timeout: float = 0.0) -> p.Message | None:
        """The next message for any job, or None if none arrived within ``timeout`` seconds.

        ``poll(0)`` never blocks waiting (a message that has started to arrive is read to
        its end), so a Qt plug-in can call it from a QTimer.
        """
        if self._backlog:
            return self._backlog.popleft()
        if self._sock is None:
            raise BridgeError(CONNECTION_LOST, "not connected to the bridge")
        return self._read(timeout, stash=False)

    def events(self, job_id: str, timeout: float | None = None) -> Iterator[p.Message]:
        """Yield the job's messages (queued, progress...) up to and including its final one
        (result or error). ``timeout`` bounds the wait for each message (None: forever).
        Messages of other jobs are kept for their own ``events``/``poll`` calls."""
        while True:
            msg = self._take(job_id)
            if msg is None:
                msg = self._read(timeout, stash=True, job_id=job_id)
            if msg is None:
                raise BridgeError(p.TIMEOUT, f"no news about job {job_id} for {timeout:g} s")
            yield msg
            if msg.is_final:
                return

    def edit(
        self,
        image_png: bytes,
        source: str,
        target: str | Sequence[str],
        mask_png: bytes | None = None,
        settings: dict | None = None,
        meta: dict | None = None,
        offset: tuple[int, int] = (0, 0),
        on_progress: Callable[[p.Message], None] | None = None,
    ) -> p.Message:
        """Submit an edit and wait for it. Returns the result message (PNG in
        ``.parts["image"]``; with several targets, one PNG per target from
        :func:`plugin_bridge.protocol.result_images`); raises BridgeError for an error reply."""
        job = self.submit_edit(image_png, source, target, mask_png, settings, meta, offset)
        for msg in self.events(job):
            if msg.type == p.RESULT:
                return msg
            _raise_if_error(msg)
            if on_progress is not None:
                on_progress(msg)
        raise BridgeError(CONNECTION_LOST, f"job {job} ended without a result")  # unreachable

    # ------------------------------------------------------------------ internals
    def _refresh(self) -> None:
        """Drop a connection the server has closed meanwhile (idle TIMEOUT, server restart),
        keeping any messages that arrived, so the next request reconnects transparently."""
        try:
            while self._sock is not None:
                msg = self._read(0.0)
                if msg is None:
                    return
                self._backlog.append(msg)
        except BridgeError:
            self.close()

    def _take(self, job_id: str) -> p.Message | None:
        for i, msg in enumerate(self._backlog):
            if msg.job == job_id:
                del self._backlog[i]
                return msg
        return None

    def _read(
        self, timeout: float | None, stash: bool = False, job_id: str | None = None
    ) -> p.Message | None:
        """Read the next message (for ``job_id`` when stashing others). None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self._sock is None:
                raise BridgeError(CONNECTION_LOST, "not connected to the bridge")
            if not _wait_readable(self._sock, left):
                return None
            msg = self._guard(lambda: p.read_message(self._stream, self.limits))
            if msg.type == p.ERROR and msg.get("fatal"):
                self.close()
                if msg.job is None:
                    _raise_if_error(msg)
            if not stash or msg.job == job_id:
                return msg
            self._backlog.append(msg)

    def _send(self, message: p.Message) -> None:
        if self._stream is None:
            raise BridgeError(CONNECTION_LOST, "not connected to the bridge")
        self._guard(lambda: p.write_message(self._stream, message))

    def _guard(self, action):
        try:
            return action()
        except p.ConnectionClosed:
            self.close()
            raise BridgeError(CONNECTION_LOST, "the bridge closed the connection") from None
        except p.ProtocolError as exc:
            self.close()
            raise BridgeError(exc.code, f"protocol error: {exc.message}") from None
        except (TimeoutError, socket.timeout):  # noqa: UP041 - distinct before Python 3.10
            self.close()
            raise BridgeError(
                p.TIMEOUT, f"the bridge did not respond within {self.timeout:g} s"
            ) from None
        except OSError as exc:
            self.close()
            raise BridgeError(CONNECTION_LOST, f"connection to the bridge lost ({exc})") from None


# ----------------------------------------------------------------------------- waiting
def _wait_readable(sock: socket.socket, timeout: float | None) -> bool:
    """Whether ``sock`` has data within ``timeout`` seconds (None: wait for it), waiting in
    WAIT_SLICE steps so that Ctrl+C interrupts the wait on every OS."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pending = getattr(sock, "pending", None)  # an ssl socket's already decrypted bytes
        if pending is not None and pending():
            return True
        left = WAIT_SLICE if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([sock], [], [], min(left, WAIT_SLICE))
        if ready:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


class _SlicedStream(p.SocketStream):
    """A SocketStream whose reads wait for data in WAIT_SLICE steps (up to the socket's
    timeout), so the handshake and a message's body can be interrupted too."""

    def read(self, n: int) -> bytes:
        if not _wait_readable(self.sock, self.sock.gettimeout()):
            raise socket.timeout("timed out")
        return super().read(n)


def _raise_if_error(msg: p.Message) -> None:
    if msg.type == p.ERROR:
        code = str(msg.get("code", p.INTERNAL))
        raise BridgeError(code, f"{code}: {msg.get('message', 'unknown error')}")


# ----------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m plugin_bridge.client",
        description="Send a PNG to a running cds-desktop bridge (`cds-desktop --serve`) and "
        "write the edited PNG.",
    )
    ap.add_argument("image", help="input PNG")
    ap.add_argument("--source", required=True, help="prompt describing the input image")
    ap.add_argument(
        "--target",
        required=True,
        action="append",
        help="prompt describing the wanted image (repeatable: one shared run, one output each)",
    )
    ap.add_argument("--mask", help="mask PNG, same size; white = edit, black = keep")
    ap.add_argument(
        "-o",
        "--output",
        required=True,
        help="output PNG, written atomically (several targets: OUT-1-<target>.png, ...)",
    )
    ap.add_argument(
        "--host",
        default=p.DEFAULT_HOST,
        help="the bridge's computer (default 127.0.0.1); any other is reached over TLS",
    )
    ap.add_argument("--port", type=int, default=DEFAULT_PORT)
    ap.add_argument(
        "--fingerprint",
        help="SHA-256 fingerprint the remote bridge printed (default: trust the certificate "
        "seen first, then refuse any other)",
    )
    ap.add_argument(
        "--tls", action="store_true", help="use TLS on a loopback address too (remote mode)"
    )
    ap.add_argument("--steps", type=int, help="optimisation steps (server default 200)")
    ap.add_argument("--mode", choices=("cds", "dds"), help="cds (default) or plain dds")
    ap.add_argument("--seed", type=int)
    ap.add_argument(
        "--token-file",
        help=f"token file (default: ${config.TOKEN_ENV} if set, else {token_path()})",
    )
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    return ap


def _read_png_file(path: str, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BridgeError(p.BAD_REQUEST, f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        read_png_size(data)
    except PngError as exc:
        raise BridgeError(p.BAD_REQUEST, f"{what} {path}: {exc}") from None
    return data


def _slug(text: str, limit: int = 40) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "-", text.strip()).strip("-").lower()
    return (s or "edit")[:limit]


def output_paths(output: str, targets: Sequence[str]) -> list[Path]:
    """One output per target: ``output`` itself for one target, else
    ``<stem>-<n>-<target>.png`` next to it (the names ``cds-edit`` gives)."""
    out = Path(output)
    if len(targets) == 1:
        return [out]
    return [
        out.with_name(f"{out.stem}-{i + 1}-{_slug(t)}{out.suffix or '.png'}")
        for i, t in enumerate(targets)
    ]


class _ProgressLines:
    """Progress on stderr: one line per stage, the steps rewritten in place."""

    def __init__(self) -> None:
        self.open = False  # a "step n/N" line without its newline yet

    def __call__(self, msg: p.Message) -> None:
        if msg.type == p.QUEUED:
            self.say(f"queued (position {msg.get('position', '?')})")
        elif msg.get("stage") == "loading":
            self.say(str(msg.get("message") or "loading model"))
        elif msg.type == p.PROGRESS and msg.get("total"):
            count = msg.get("count")
            each = f" ({count} targets)" if isinstance(count, int) and count > 1 else ""
            sys.stderr.write(f"\rstep {msg.get('step', 0)}/{msg['total']}{each}")
            self.open = msg.get("step") != msg.get("total")
            if not self.open:
                sys.stderr.write("\n")
        sys.stderr.flush()

    def say(self, line: str) -> None:
        """``line`` on a line of its own."""
        sys.stderr.write(("\n" if self.open else "") + line + "\n")
        sys.stderr.flush()
        self.open = False


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = {k: v for k, v in (("steps", args.steps), ("mode", args.mode), ("seed", args.seed))}
    settings = {k: v for k, v in settings.items() if v is not None}
    progress = _ProgressLines()
    try:
        image = _read_png_file(args.image, "image")
        mask = _read_png_file(args.mask, "mask") if args.mask else None
        out_dir = Path(args.output).resolve().parent
        if not out_dir.is_dir():
            raise BridgeError(p.BAD_REQUEST, f"output folder {out_dir} does not exist")
        token = read_token(args.token_file) if args.token_file else None
        if args.fingerprint:
            try:
                pinning.normalize(args.fingerprint)
            except pinning.PinError as exc:
                raise BridgeError(p.BAD_REQUEST, f"--fingerprint: {exc}") from None
        client = BridgeClient(
            args.host,
            args.port,
            token=token,
            timeout=args.timeout,
            tls=True if args.tls or args.fingerprint else None,
            fingerprint=args.fingerprint,
        )
        outputs = output_paths(args.output, args.target)
        target = args.target if len(args.target) > 1 else args.target[0]
        with client:
            if client.pinned_now:
                progress.say(
                    f"first connection to {args.host}:{args.port}: trusting its certificate "
                    f"{client.server_fingerprint} from now on (compare it with the one the "
                    "server printed)"
                )
            result = client.edit(image, args.source, target, mask, settings, on_progress=progress)
        images = _result_images(result, len(outputs))
    except BridgeError as exc:
        progress.say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:  # the connection is closed: the bridge cancels the job
        progress.say("interrupted: the edit was cancelled")
        return 130
    return _write_outputs(outputs, images, result.get("elapsed", 0))


def _result_images(result: p.Message, count: int) -> list[bytes]:
    try:
        images = p.result_images(result)
    except p.ProtocolError as exc:
        raise BridgeError(exc.code, exc.message) from None
    if len(images) != count:
        raise BridgeError(p.INTERNAL, f"the bridge returned {len(images)} images for {count}")
    return images


def _write_outputs(outputs: list[Path], images: list[bytes], elapsed) -> int:
    """Write each output atomically; one line per failure (the others are still written)."""
    failed = 0
    for path, data in zip(outputs, images):
        try:
            write_bytes_atomic(path, data)
        except OSError as exc:
            failed += 1
            sys.stderr.write(f"error: cannot write {path}: {exc.strerror or exc}\n")
            continue
        seconds = elapsed if isinstance(elapsed, (int, float)) else 0
        sys.stderr.write(f"wrote {path} ({seconds:.1f} s)\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
