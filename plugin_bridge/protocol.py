"""Wire protocol of the cds-desktop bridge: handshake, frames, messages, error codes.

Standard library only: this module runs inside Krita's and GIMP's own Python. It knows
nothing about sockets beyond :class:`SocketStream`; every reader/writer takes a file-like
object with ``read(n)`` / ``write(b)``, so it works on sockets, pipes and ``io.BytesIO``.
The full specification, enough to write a client in another language, is
``docs/bridge-protocol.md``.

Layout on the wire (all integers big-endian)::

    handshake  client -> server   b"CDSB" u16 version
               server -> client   b"CDSB" u16 version
    frame      u32 json_length  u64 payload_length  json_header  payload

The JSON header is a UTF-8 object with at least ``type`` and ``job``; binary blobs (PNG
images) travel in the payload, split into named parts listed in the header as
``"parts": [{"name": "image", "length": 1234}, ...]`` in payload order.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Sequence

MAGIC = b"CDSB"
PROTOCOL_VERSION = 1
DEFAULT_PORT = 47860
DEFAULT_HOST = "127.0.0.1"

HANDSHAKE = struct.Struct(">4sH")
FRAME_HEADER = struct.Struct(">IQ")

MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_PAYLOAD = 256 * 1024 * 1024
MAX_PART_NAME = 32
MAX_JOB_ID = 64

# ----------------------------------------------------------------------------- message types
HELLO = "hello"
WELCOME = "welcome"
EDIT = "edit"
QUEUED = "queued"
PROGRESS = "progress"
RESULT = "result"
ERROR = "error"
CANCEL = "cancel"
PING = "ping"
PONG = "pong"

CLIENT_TYPES = (HELLO, EDIT, CANCEL, PING)
SERVER_TYPES = (WELCOME, QUEUED, PROGRESS, RESULT, ERROR, PONG)
#: A job's last message: after one of these no more messages carry that job id.
FINAL_TYPES = (RESULT, ERROR)

# ----------------------------------------------------------------------------- error codes
AUTH_FAILED = "AUTH_FAILED"
UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
BAD_REQUEST = "BAD_REQUEST"
TOO_LARGE = "TOO_LARGE"
MODEL_ERROR = "MODEL_ERROR"
EDIT_FAILED = "EDIT_FAILED"
CANCELLED = "CANCELLED"
BUSY = "BUSY"
TIMEOUT = "TIMEOUT"
INTERNAL = "INTERNAL"

#: Every code the server sends, with its meaning (docs/bridge-protocol.md has the same table).
ERROR_CODES: dict[str, str] = {
    AUTH_FAILED: "the hello was missing or its token is wrong (fatal)",
    UNSUPPORTED_VERSION: "the server does not speak the client's protocol version (fatal)",
    BAD_REQUEST: "malformed frame (fatal) or invalid message/field/setting (not fatal)",
    TOO_LARGE: "a header, payload or image exceeds a limit",
    MODEL_ERROR: "the model could not be loaded",
    EDIT_FAILED: "the edit itself failed (bad mask, diverged, out of memory, ...)",
    CANCELLED: "the job was cancelled (by the client or because the server stops)",
    BUSY: "too many connections or too many jobs in flight on this connection",
    TIMEOUT: "the connection was idle too long (fatal)",
    INTERNAL: "unexpected server error; details are in the server log",
}


class ProtocolError(Exception):
    """A violation of the protocol (or a limit), with the error code to report."""

    def __init__(self, code: str, message: str, fatal: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fatal = fatal

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class NotProtocol(ProtocolError):
    """The peer did not start with the magic bytes (e.g. an HTTP request): just close."""

    def __init__(self, message: str) -> None:
        super().__init__(BAD_REQUEST, message, fatal=True)


class ConnectionClosed(ProtocolError):
    """The stream ended cleanly between frames."""

    def __init__(self, message: str = "connection closed") -> None:
        super().__init__(BAD_REQUEST, message, fatal=True)


@dataclass(frozen=True)
class Limits:
    """Enforced by :func:`read_message` before anything is allocated."""

    max_header: int = MAX_HEADER_BYTES
    max_payload: int = DEFAULT_MAX_PAYLOAD


class Message(dict):
    """A protocol message: the JSON header fields as a dict, binary parts in ``.parts``.

    ``msg["type"]``, ``msg["job"]`` and the other header fields are plain dict items;
    ``msg.parts`` maps part names ("image", "mask", "preview") to bytes. The ``parts`` list
    of the wire header is rebuilt from ``.parts`` on write and never appears as an item.
    """

    def __init__(
        self, type: str, job: str | None = None, parts: dict[str, bytes] | None = None, **fields
    ) -> None:
        super().__init__(type=type, job=job, **fields)
        self.parts: dict[str, bytes] = dict(parts or {})

    @classmethod
    def from_header(cls, header: dict[str, Any], parts: dict[str, bytes]) -> Message:
        """Build from a decoded JSON header (any keys, even ones named like arguments)."""
        message = cls.__new__(cls)
        dict.__init__(message, header)
        message.parts = dict(parts)
        return message

    @property
    def type(self) -> str:
        return self["type"]

    @property
    def job(self) -> str | None:
        return self.get("job")

    @property
    def is_final(self) -> bool:
        return self.type in FINAL_TYPES

    def __repr__(self) -> str:
        parts = {name: f"<{len(data)} bytes>" for name, data in self.parts.items()}
        return f"Message({dict.__repr__(self)}, parts={parts})"


# ----------------------------------------------------------------------------- handshake
def encode_handshake(version: int = PROTOCOL_VERSION) -> bytes:
    return HANDSHAKE.pack(MAGIC, version)


def write_handshake(stream, version: int = PROTOCOL_VERSION) -> None:
    stream.write(encode_handshake(version))
    _flush(stream)


def read_handshake(stream) -> int:
    """Read the 6-byte handshake; return the peer's version. Raises NotProtocol on bad magic."""
    data = read_exact(stream, HANDSHAKE.size, at_boundary=True)
    magic, version = HANDSHAKE.unpack(data)
    if magic != MAGIC:
        raise NotProtocol(f"not a cds-desktop bridge stream (got {data[:4]!r})")
    return version


# ----------------------------------------------------------------------------- frames
def encode_header(message: Message) -> bytes:
    """The fixed 12-byte frame header plus the JSON header of ``message``."""
    header = dict(message)
    header.pop("parts", None)
    header.setdefault("job", None)
    if message.parts:
        header["parts"] = [{"name": n, "length": len(b)} for n, b in message.parts.items()]
    body = json.dumps(header, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    body = body.encode("utf-8")
    if len(body) > MAX_HEADER_BYTES:
        raise ProtocolError(TOO_LARGE, f"JSON header is {len(body)} bytes (max {MAX_HEADER_BYTES})")
    payload = sum(len(b) for b in message.parts.values())
    return FRAME_HEADER.pack(len(body), payload) + body


def encode_message(message: Message) -> bytes:
    """A whole frame as one bytes object (handy for tests and small messages)."""
    return encode_header(message) + b"".join(message.parts.values())


def write_message(stream, message: Message) -> None:
    """Write one frame: header, then each part without copying it into one buffer."""
    stream.write(encode_header(message))
    for data in message.parts.values():
        if data:
            stream.write(data)
    _flush(stream)


def read_message(stream, limits: Limits = Limits()) -> Message:
    """Read one frame. Raises ConnectionClosed at a clean end of stream, ProtocolError for a
    truncated or malformed frame, and ProtocolError(TOO_LARGE) before reading an oversized one.
    """
    json_len, payload_len = FRAME_HEADER.unpack(
        read_exact(stream, FRAME_HEADER.size, at_boundary=True)
    )
    if json_len > limits.max_header:
        raise ProtocolError(TOO_LARGE, f"JSON header of {json_len} bytes (max {limits.max_header})")
    if payload_len > limits.max_payload:
        raise ProtocolError(TOO_LARGE, f"payload of {payload_len} bytes (max {limits.max_payload})")
    header = parse_header(read_exact(stream, json_len))
    parts_spec = header.pop("parts", None)
    names_lengths = check_parts(parts_spec, payload_len)
    parts = {name: read_exact(stream, length) for name, length in names_lengths}
    return Message.from_header(header, parts)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (RFC 8259)")


def parse_header(data: bytes) -> dict[str, Any]:
    """Decode a JSON header strictly: UTF-8, an object, no NaN/Infinity, no lone surrogates
    (escaped ``\\ud800`` etc.), so whatever is echoed back is valid JSON and encodable."""
    try:
        header = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
        if not isinstance(header, dict):
            raise ProtocolError(BAD_REQUEST, "JSON header must be an object")
        json.dumps(header, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(
            BAD_REQUEST, "JSON header has a lone surrogate (\\ud800-\\udfff) in a string"
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(BAD_REQUEST, f"JSON header is not valid UTF-8 JSON ({exc})") from None
    except RecursionError:
        raise ProtocolError(BAD_REQUEST, "JSON header is nested too deeply") from None
    kind = header.get("type")
    if not isinstance(kind, str) or not kind:
        raise ProtocolError(BAD_REQUEST, "JSON header has no 'type' string")
    job = header.setdefault("job", None)
    if job is not None and not (isinstance(job, str) and 0 < len(job) <= MAX_JOB_ID):
        raise ProtocolError(BAD_REQUEST, f"'job' must be null or a string of 1..{MAX_JOB_ID} chars")
    return header


def check_parts(spec: Any, payload_len: int) -> list[tuple[str, int]]:
    """Validate the header's ``parts`` list against the payload length."""
    if spec is None:
        spec = []
    if not isinstance(spec, list):
        raise ProtocolError(BAD_REQUEST, "'parts' must be a list of {name, length} objects")
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    for item in spec:
        name = item.get("name") if isinstance(item, dict) else None
        length = item.get("length") if isinstance(item, dict) else None
        if not isinstance(name, str) or not 0 < len(name) <= MAX_PART_NAME:
            raise ProtocolError(BAD_REQUEST, f"part name must be a string of 1..{MAX_PART_NAME}")
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ProtocolError(BAD_REQUEST, f"part {name!r}: length must be an integer >= 0")
        if name in seen:
            raise ProtocolError(BAD_REQUEST, f"part {name!r} is listed twice")
        seen.add(name)
        out.append((name, length))
    total = sum(length for _, length in out)
    if total != payload_len:
        raise ProtocolError(
            BAD_REQUEST, f"parts add up to {total} bytes but the payload is {payload_len}"
        )
    return out


def read_exact(stream, n: int, at_boundary: bool = False) -> bytes:
    """Read exactly ``n`` bytes (looping over short reads). EOF before the first byte at a
    frame boundary is ConnectionClosed; any other EOF is a truncated frame."""
    if n == 0:
        return b""
    chunk = stream.read(n)
    if not chunk:
        if at_boundary:
            raise ConnectionClosed()
        raise ProtocolError(BAD_REQUEST, f"stream ended inside a frame (0/{n} bytes)")
    if len(chunk) == n:
        return bytes(chunk)
    buf = bytearray(chunk)
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            raise ProtocolError(BAD_REQUEST, f"stream ended inside a frame ({len(buf)}/{n} bytes)")
        buf += chunk
    return bytes(buf)


def _flush(stream) -> None:
    flush = getattr(stream, "flush", None)
    if flush is not None:
        flush()


# ----------------------------------------------------------------------------- sockets
class SocketStream:
    """Adapts a socket to the ``read(n)`` / ``write(b)`` interface, unbuffered.

    Unbuffered on purpose: ``select()`` on the socket then tells the truth about whether a
    frame is waiting, which :meth:`plugin_bridge.client.BridgeClient.poll` relies on.
    """

    CHUNK = 1 << 20

    def __init__(self, sock) -> None:
        self.sock = sock

    def read(self, n: int) -> bytes:
        return self.sock.recv(min(n, self.CHUNK))

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)


# ----------------------------------------------------------------------------- constructors
def hello(token: str, client: str = "") -> Message:
    return Message(HELLO, None, token=token, client=client, protocol=PROTOCOL_VERSION)


def edit(
    job: str,
    image_png: bytes,
    source: str,
    target: str | Sequence[str],
    mask_png: bytes | None = None,
    settings: dict | None = None,
    meta: dict | None = None,
    offset: tuple[int, int] = (0, 0),
) -> Message:
    """An ``edit``. ``target`` is one prompt (field ``target``, every server) or a list of
    prompts (field ``targets``: one shared run, one result image per prompt; the server's
    ``welcome.limits.max_targets`` says how many it takes, absent = one)."""
    parts = {"image": image_png}
    if mask_png is not None:
        parts["mask"] = mask_png
    prompts = {"target": target} if isinstance(target, str) else {"targets": list(target)}
    return Message(
        EDIT,
        job,
        parts=parts,
        source=source,
        **prompts,
        settings=dict(settings or {}),
        meta=dict(meta or {}),
        offset=[int(offset[0]), int(offset[1])],
    )


def result_part_name(index: int) -> str:
    """The ``result`` part holding target ``index``'s image: ``image``, ``image.1``, ..."""
    return "image" if index == 0 else f"image.{index}"


def result_images(result: Message) -> list[bytes]:
    """The PNG of each target of a ``result``, in target order: the parts named by its
    ``images`` field (an edit sent with ``targets``), else the one ``image`` part."""
    names = result.get("images")
    if not isinstance(names, list) or not names:
        names = [result_part_name(0)]
    missing = [name for name in names if name not in result.parts]
    if missing:
        raise ProtocolError(BAD_REQUEST, f"result without its image part(s) {missing}")
    return [result.parts[name] for name in names]


def cancel(job: str) -> Message:
    return Message(CANCEL, job)


def ping(nonce: Any = None) -> Message:
    return Message(PING, None, nonce=nonce)


def error(code: str, message: str, job: str | None = None, fatal: bool = False) -> Message:
    return Message(ERROR, job, code=code, message=message, fatal=fatal)
