"""Minimal PNG encoder/decoder for 8-bit images, standard library only (zlib + struct).

Plug-ins use it to turn raw layer pixels into PNG bytes (and back) without PIL.

* :func:`encode_png` writes 8-bit gray / RGB / RGBA, non-interlaced, filter type 0 on every
  row (fast to write and to read back in pure Python; size hardly matters on loopback).
* :func:`decode_png` reads 8-bit gray, gray+alpha, RGB, RGBA and palette images,
  non-interlaced, with all five filter types, and always returns RGBA8 bytes.
* :func:`read_png_size` reads only the IHDR chunk, so callers can refuse huge images before
  decompressing anything.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"
GRAY, RGB, PALETTE, GRAY_ALPHA, RGBA = 0, 2, 3, 4, 6
CHANNELS = {GRAY: 1, RGB: 3, PALETTE: 1, GRAY_ALPHA: 2, RGBA: 4}
COLOR_TYPE_FOR_CHANNELS = {1: GRAY, 3: RGB, 4: RGBA}
#: Refuse larger images by default (a decompression-bomb guard); callers may pass their own.
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024


class PngError(ValueError):
    """Not a PNG, a damaged PNG, or a kind of PNG this codec does not read."""


@dataclass(frozen=True)
class PngImage:
    width: int
    height: int
    rgba: bytes  # width * height * 4 bytes, rows top to bottom


# ----------------------------------------------------------------------------- encode
def encode_png(
    width: int,
    height: int,
    pixels: bytes | bytearray | memoryview,
    channels: int = 4,
    level: int = 6,
) -> bytes:
    """Raw 8-bit pixels (rows top to bottom, ``channels`` = 1, 3 or 4) -> PNG bytes."""
    if channels not in COLOR_TYPE_FOR_CHANNELS:
        raise PngError(f"channels={channels}: expected 1 (gray), 3 (RGB) or 4 (RGBA)")
    if width < 1 or height < 1 or width > 2**31 - 1 or height > 2**31 - 1:
        raise PngError(f"image size {width}x{height}: expected sides in 1..2^31-1")
    stride = width * channels
    data = memoryview(pixels).cast("B")
    if len(data) != stride * height:
        raise PngError(
            f"got {len(data)} bytes of pixels, expected {stride * height} "
            f"({width}x{height}x{channels})"
        )
    packer = zlib.compressobj(level)
    chunks = []
    for y in range(height):
        chunks.append(packer.compress(b"\x00"))
        chunks.append(packer.compress(data[y * stride : (y + 1) * stride]))
    chunks.append(packer.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, COLOR_TYPE_FOR_CHANNELS[channels], 0, 0, 0)
    return b"".join(
        [SIGNATURE, _chunk(b"IHDR", ihdr), _chunk(b"IDAT", b"".join(chunks)), _chunk(b"IEND", b"")]
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


# ----------------------------------------------------------------------------- decode
@dataclass(frozen=True)
class _Header:
    width: int
    height: int
    bit_depth: int
    color_type: int
    interlace: int


def read_png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, without decompressing anything."""
    header = _read_ihdr(data)
    return header.width, header.height


def _read_ihdr(data: bytes) -> _Header:
    if len(data) < 33 or data[:8] != SIGNATURE:
        raise PngError("not a PNG file (bad signature)")
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        raise PngError("damaged PNG: the first chunk is not IHDR")
    width, height, depth, color, _comp, _filt, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if width < 1 or height < 1:
        raise PngError(f"damaged PNG: size {width}x{height}")
    return _Header(width, height, depth, color, interlace)


def decode_png(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> PngImage:
    """PNG bytes -> PngImage with RGBA8 pixels. Raises PngError for anything it cannot read."""
    header = _read_ihdr(data)
    if header.width * header.height > max_pixels:
        raise PngError(
            f"image of {header.width}x{header.height} pixels exceeds the limit of {max_pixels}"
        )
    if header.bit_depth != 8 or header.color_type not in CHANNELS:
        raise PngError(
            f"unsupported PNG (bit depth {header.bit_depth}, color type {header.color_type}): "
            "only 8-bit gray, gray+alpha, RGB, RGBA and palette images are read"
        )
    if header.interlace:
        raise PngError("unsupported PNG: interlaced (Adam7) images are not read")
    idat, palette, trns = _collect_chunks(data)
    channels = CHANNELS[header.color_type]
    stride = header.width * channels
    raw = _inflate(idat, (stride + 1) * header.height)
    pixels = _unfilter(raw, header.height, stride, channels)
    return PngImage(header.width, header.height, _to_rgba(pixels, header.color_type, palette, trns))


def _collect_chunks(data: bytes) -> tuple[bytes, bytes | None, bytes | None]:
    pos, idat, palette, trns = 8, [], None, None
    while pos < len(data):
        if pos + 8 > len(data):
            raise PngError("damaged PNG: the file is truncated")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(data):
            raise PngError(f"damaged PNG: chunk {kind!r} is truncated")
        crc = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0]
        if zlib.crc32(body, zlib.crc32(kind)) & 0xFFFFFFFF != crc:
            raise PngError(f"damaged PNG: bad CRC in chunk {kind!r}")
        if kind == b"IDAT":
            idat.append(body)
        elif kind == b"PLTE":
            palette = body
        elif kind == b"tRNS":
            trns = body
        elif kind == b"IEND":
            break
        pos += 12 + length
    if not idat:
        raise PngError("damaged PNG: no image data (IDAT)")
    return b"".join(idat), palette, trns


def _inflate(data: bytes, expected: int) -> bytes:
    unpacker = zlib.decompressobj()
    try:
        raw = unpacker.decompress(data, expected)
    except zlib.error as exc:
        raise PngError(f"damaged PNG: {exc}") from None
    if len(raw) < expected:
        raise PngError(f"damaged PNG: image data too short ({len(raw)}/{expected} bytes)")
    return raw


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> bytes:
    out = bytearray(stride * height)
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        row = bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                row[i] = (row[i] + row[i - bpp]) & 0xFF
        elif kind == 2:
            row = bytearray((a + b) & 0xFF for a, b in zip(row, prev))
        elif kind == 3:
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                row[i] = (row[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            _unpaeth(row, prev, bpp)
        elif kind != 0:
            raise PngError(f"damaged PNG: unknown filter type {kind} in row {y}")
        out[y * stride : (y + 1) * stride] = row
        prev = row
    return bytes(out)


def _unpaeth(row: bytearray, prev: bytearray, bpp: int) -> None:
    for i in range(len(row)):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
        if pa <= pb and pa <= pc:
            pred = a
        elif pb <= pc:
            pred = b
        else:
            pred = c
        row[i] = (row[i] + pred) & 0xFF


def _to_rgba(pixels: bytes, color_type: int, palette: bytes | None, trns: bytes | None) -> bytes:
    if color_type == RGBA:
        return pixels
    n = len(pixels) // CHANNELS[color_type]
    out = bytearray(n * 4)
    if color_type == RGB:
        for c in range(3):
            out[c::4] = pixels[c::3]
        out[3::4] = b"\xff" * n
    elif color_type == GRAY:
        for c in range(3):
            out[c::4] = pixels
        out[3::4] = b"\xff" * n
    elif color_type == GRAY_ALPHA:
        for c in range(3):
            out[c::4] = pixels[0::2]
        out[3::4] = pixels[1::2]
    else:
        _expand_palette(pixels, palette, trns, out)
    return bytes(out)


def _expand_palette(indices: bytes, palette: bytes | None, trns: bytes | None, out: bytearray):
    if not palette or len(palette) % 3:
        raise PngError("damaged PNG: palette image without a valid PLTE chunk")
    entries = len(palette) // 3
    if max(indices, default=0) >= entries:
        raise PngError("damaged PNG: a pixel refers past the end of the palette")
    alpha = (trns or b"")[:entries]
    tables = [bytes(palette[c::3]).ljust(256, b"\x00") for c in range(3)]
    tables.append(alpha + b"\xff" * (256 - len(alpha)))
    for c, table in enumerate(tables):
        out[c::4] = indices.translate(table)
