"""The stdlib PNG codec against PIL: encode -> PIL reads the same pixels; PIL/hand-filtered
PNGs -> decode gives PIL's pixels; damaged or unsupported files give PngError."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from plugin_bridge import pngcodec as codec


def random_pixels(channels: int, width: int = 32, height: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # smooth-ish content so every filter type does real work
    base = rng.integers(0, 256, (height, width, channels), dtype=np.int64)
    ramp = (np.arange(width)[None, :, None] * 7 + np.arange(height)[:, None, None] * 3) % 256
    return ((base // 4 + ramp) % 256).astype(np.uint8)


def pil_rgba(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.array(img.convert("RGBA"))


def decoded(data: bytes) -> np.ndarray:
    img = codec.decode_png(data)
    return np.frombuffer(img.rgba, np.uint8).reshape(img.height, img.width, 4)


@pytest.mark.parametrize("channels, mode", [(1, "L"), (3, "RGB"), (4, "RGBA")])
def test_encode_is_read_back_identically_by_pil(channels, mode):
    arr = random_pixels(channels)
    data = codec.encode_png(32, 24, arr.tobytes(), channels=channels)
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode == mode and img.size == (32, 24)
        assert np.array_equal(np.array(img).reshape(arr.shape), arr)
    assert codec.read_png_size(data) == (32, 24)


@pytest.mark.parametrize("mode", ["RGBA", "RGB", "L", "LA"])
def test_decode_matches_pil_for_pil_written_files(mode):
    img = Image.fromarray(random_pixels(4)).convert(mode)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    assert np.array_equal(decoded(buf.getvalue()), pil_rgba(buf.getvalue()))


def test_decode_palette_with_transparency():
    img = Image.fromarray(random_pixels(3)).quantize(200)
    img.info["transparency"] = bytes([0, 128, 255] + [255] * 197)
    buf = io.BytesIO()
    img.save(buf, "PNG", transparency=img.info["transparency"])
    assert np.array_equal(decoded(buf.getvalue()), pil_rgba(buf.getvalue()))


def _filter_row(kind: int, row: np.ndarray, prev: np.ndarray, bpp: int) -> bytes:
    row, prev = row.astype(np.int32), prev.astype(np.int32)
    left = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
    upleft = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
    if kind == 0:
        pred = np.zeros_like(row)
    elif kind == 1:
        pred = left
    elif kind == 2:
        pred = prev
    elif kind == 3:
        pred = (left + prev) // 2
    else:
        pa, pb, pc = np.abs(prev - upleft), np.abs(left - upleft), np.abs(left + prev - 2 * upleft)
        pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
    return bytes([kind]) + ((row - pred) % 256).astype(np.uint8).tobytes()


def hand_filtered_png(arr: np.ndarray, kinds: list[int], color_type: int) -> bytes:
    """A PNG whose rows use the given filter types in turn (an independent encoder)."""
    height, width, bpp = arr.shape
    flat = arr.reshape(height, width * bpp)
    prev = np.zeros(width * bpp, np.uint8)
    raw = b""
    for y in range(height):
        raw += _filter_row(kinds[y % len(kinds)], flat[y], prev, bpp)
        prev = flat[y]

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    idat = zlib.compress(raw)
    # split IDAT in two chunks: decoders must concatenate them
    return (
        codec.SIGNATURE
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", idat[:10])
        + chunk(b"IDAT", idat[10:])
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("channels, color_type", [(4, 6), (3, 2), (1, 0), (2, 4)])
@pytest.mark.parametrize("kinds", [[0], [1], [2], [3], [4], [4, 3, 2, 1, 0]])
def test_decode_every_filter_type(channels, color_type, kinds):
    arr = random_pixels(channels, width=9, height=7, seed=len(kinds))
    data = hand_filtered_png(arr, kinds, color_type)
    expected = pil_rgba(data)  # PIL agrees, so the hand-made file is a valid PNG
    assert np.array_equal(decoded(data), expected)
    if channels == 4:
        assert np.array_equal(expected, arr)


def test_damaged_and_unsupported_files_raise_png_error():
    good = codec.encode_png(4, 3, bytes(48))
    corrupt_crc = bytearray(good)
    corrupt_crc[30] ^= 0xFF  # inside IHDR's body
    sixteen_bit = bytearray(good)
    sixteen_bit[24] = 16
    cases = {
        "signature": b"GIF89a" + good[6:],
        "truncated": good[:40],
        "CRC": bytes(corrupt_crc),
        "bit depth": _fix_ihdr_crc(bytes(sixteen_bit)),
        "pixels": good,
    }
    for fragment, data in cases.items():
        with pytest.raises(codec.PngError) as info:
            codec.decode_png(data, max_pixels=11 if fragment == "pixels" else 1 << 20)
        assert fragment.split()[0].lower() in str(info.value).lower(), fragment


def _fix_ihdr_crc(data: bytes) -> bytes:
    body = data[12:29]
    return data[:29] + struct.pack(">I", zlib.crc32(body)) + data[33:]


def test_encode_rejects_wrong_buffer_size():
    with pytest.raises(codec.PngError, match="expected 48"):
        codec.encode_png(4, 3, bytes(47))
    with pytest.raises(codec.PngError, match="channels"):
        codec.encode_png(4, 3, bytes(24), channels=2)
