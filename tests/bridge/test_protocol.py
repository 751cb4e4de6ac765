"""Framing on in-memory streams: round trips, limits, truncation, malformed headers."""

from __future__ import annotations

import io
import json
import struct

import pytest

from plugin_bridge import protocol as P


def roundtrip(message: P.Message, limits: P.Limits = P.Limits()) -> P.Message:
    buf = io.BytesIO()
    P.write_message(buf, message)
    buf.seek(0)
    out = P.read_message(buf, limits)
    assert buf.read() == b"", "the reader must consume exactly one frame"
    return out


def frame(header: dict | bytes, payload: bytes = b"", payload_len: int | None = None) -> bytes:
    body = header if isinstance(header, bytes) else json.dumps(header).encode()
    size = len(payload) if payload_len is None else payload_len
    return struct.pack(">IQ", len(body), size) + body + payload


class OneByteAtATime(io.RawIOBase):
    """A stream that returns at most one byte per read, like a slow socket."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._buf.read(min(n, 1) if n and n > 0 else 1)


class NoRead(io.RawIOBase):
    """Fails the test if anything past the given prefix is read (limits must come first)."""

    def __init__(self, prefix: bytes) -> None:
        self._buf = io.BytesIO(prefix)
        self._left = len(prefix)

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            raise AssertionError("read past the fixed header of an oversized frame")
        data = self._buf.read(min(n, self._left))
        self._left -= len(data)
        return data


def test_edit_with_non_ascii_prompts_and_two_parts_roundtrips():
    msg = P.edit(
        "job-1",
        b"\x89PNG image bytes",
        "un chat noir, très doux",
        "猫 → 犬 🐕",
        mask_png=b"mask-bytes",
        settings={"steps": 3, "mode": "dds"},
        meta={"layer": "Calque ✓", "id": 7},
        offset=(12, -5),
    )
    out = roundtrip(msg)
    assert out == msg
    assert out.type == P.EDIT and out.job == "job-1"
    assert out.parts == {"image": b"\x89PNG image bytes", "mask": b"mask-bytes"}
    assert list(out.parts) == ["image", "mask"]
    assert out["offset"] == [12, -5]
    assert "parts" not in out


def test_empty_payload_and_empty_part_roundtrip():
    out = roundtrip(P.ping("n1"))
    assert out == {"type": "ping", "job": None, "nonce": "n1"} and out.parts == {}
    out = roundtrip(P.Message(P.PROGRESS, "j", parts={"preview": b""}, step=1, total=2))
    assert out.parts == {"preview": b""}


def test_reader_handles_short_reads_and_back_to_back_frames():
    a = P.encode_message(P.Message(P.RESULT, "a", parts={"image": bytes(range(256)) * 3}))
    b = P.encode_message(P.error(P.CANCELLED, "stopped", job="b"))
    stream = OneByteAtATime(a + b)
    first, second = P.read_message(stream), P.read_message(stream)
    assert first.parts["image"] == bytes(range(256)) * 3
    assert second["code"] == P.CANCELLED and second.job == "b"
    with pytest.raises(P.ConnectionClosed):
        P.read_message(stream)


def test_wire_layout_is_big_endian_lengths_then_json_then_payload():
    data = P.encode_message(P.Message("x", "j", parts={"a": b"12", "b": b"345"}))
    json_len, payload_len = struct.unpack(">IQ", data[:12])
    header = json.loads(data[12 : 12 + json_len])
    assert payload_len == 5 and data[12 + json_len :] == b"12345"
    assert header["parts"] == [{"name": "a", "length": 2}, {"name": "b", "length": 3}]


def test_handshake():
    buf = io.BytesIO()
    P.write_handshake(buf, 7)
    assert buf.getvalue() == b"CDSB\x00\x07"
    buf.seek(0)
    assert P.read_handshake(buf) == 7
    with pytest.raises(P.NotProtocol):
        P.read_handshake(io.BytesIO(b"GET / HTTP/1.1\r\n"))
    with pytest.raises(P.ConnectionClosed):
        P.read_handshake(io.BytesIO(b""))


@pytest.mark.parametrize(
    "prefix, limits",
    [
        (struct.pack(">IQ", P.MAX_HEADER_BYTES + 1, 0), P.Limits()),
        (struct.pack(">IQ", 2, 2**63), P.Limits()),
        (struct.pack(">IQ", 2, 1001), P.Limits(max_payload=1000)),
    ],
)
def test_oversized_frames_are_refused_before_reading(prefix, limits):
    with pytest.raises(P.ProtocolError) as info:
        P.read_message(NoRead(prefix), limits)
    assert info.value.code == P.TOO_LARGE and info.value.fatal


@pytest.mark.parametrize(
    "data, fragment",
    [
        (frame(b"{not json"), "JSON"),
        (frame(b"\xff\xfe"), "UTF-8"),
        (frame(b"[1, 2]"), "object"),
        (frame(b"[" * 30000 + b"]" * 30000), "deeply"),
        (frame({"job": None}), "type"),
        (frame({"type": "ping", "job": 5}), "job"),
        (frame({"type": "ping", "job": "x" * 65}), "job"),
        (frame({"type": "edit", "job": "j"}, b"abc"), "payload is 3"),
        (frame({"type": "e", "job": "j", "parts": [{"name": "a", "length": 5}]}, b"abc"), "5"),
        (frame({"type": "e", "job": "j", "parts": {"a": 3}}, b"abc"), "list"),
        (frame({"type": "e", "job": "j", "parts": [{"name": "", "length": 3}]}, b"abc"), "name"),
        (frame({"type": "e", "job": "j", "parts": [{"name": "a", "length": -1}]}), "length"),
        (frame({"type": "e", "job": "j", "parts": [{"name": "a", "length": True}]}), "length"),
        (
            frame(
                {"type": "e", "job": "j", "parts": [{"name": "a", "length": 1}] * 2},
                b"ab",
            ),
            "twice",
        ),
    ],
)
def test_malformed_frames_are_bad_requests(data, fragment):
    with pytest.raises(P.ProtocolError) as info:
        P.read_message(io.BytesIO(data))
    assert info.value.code == P.BAD_REQUEST
    assert fragment in info.value.message


@pytest.mark.parametrize("cut", [1, 11, 12, 20, -1])
def test_truncated_frames_are_reported_not_hung(cut):
    data = P.encode_message(P.edit("j", b"image-bytes", "a", "b"))[:cut]
    with pytest.raises(P.ProtocolError) as info:
        P.read_message(io.BytesIO(data))
    assert not isinstance(info.value, P.ConnectionClosed)
    assert "inside a frame" in info.value.message


def test_header_keys_that_look_like_arguments_are_plain_fields():
    data = frame({"type": "ping", "job": None, "self": 1, "parts": [], "fields": 2})
    out = P.read_message(io.BytesIO(data))
    assert out["self"] == 1 and out["fields"] == 2 and "parts" not in out


def test_unknown_fields_survive_and_job_defaults_to_null():
    out = P.read_message(io.BytesIO(frame({"type": "pong", "future": [1, {"x": None}]})))
    assert out.job is None and out["future"] == [1, {"x": None}]


def test_error_codes_are_documented():
    with open(_doc_path(), encoding="utf-8") as f:
        doc = f.read()
    for code in P.ERROR_CODES:
        assert f"`{code}`" in doc, code


def _doc_path() -> str:
    import pathlib

    return str(pathlib.Path(__file__).resolve().parents[2] / "docs" / "bridge-protocol.md")
