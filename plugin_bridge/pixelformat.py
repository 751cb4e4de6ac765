"""High-bit-depth RGBA pixels for the plug-ins: to 8-bit sRGB for the model and back.

The model (and the bridge's PNGs) work in 8-bit sRGB-encoded RGBA. A host document may hold
8- or 16-bit integers or 16- or 32-bit floats per channel, encoded with the sRGB curve, a
power-law gamma, or linearly. This module converts a box of the document's pixels to what
the bridge takes (:func:`to_rgba8`) and puts the bridge's 8-bit answer back at the
document's precision (:func:`composite`):

* where the mask is 0 the output pixel is the source pixel, **byte for byte**;
* the alpha channel is always the source's own (the engine never edits alpha);
* inside the mask (weight ``a = mask / 255``), in sRGB-encoded values,
  ``out = result8 + (1 - a) * (source - source8)``: the 8-bit result plus the part of the
  source that 8 bits could not hold, in proportion to how unselected the pixel is. Since the
  engine made ``result8 = (1 - a) * source8 + a * edit``, this is
  ``(1 - a) * source + a * edit`` with the source at full precision: where ``a = 1`` the
  pixel is the 8-bit edit, exactly, converted to the document's format.

Colour primaries are not converted (the transfer curve is): a document in a wide-gamut
profile is edited with its channel values read as if they were sRGB's.

Standard library only (struct/array, no numpy); runs on Python 3.8+. Host byte order, as
Krita's ``pixelData`` and GEGL's buffers use.
"""

from __future__ import annotations

import math
import re
import struct
from array import array
from bisect import bisect_right
from functools import partial
from typing import NamedTuple

U8, U16, F16, F32 = "u8", "u16", "f16", "f32"
KINDS = (U8, U16, F16, F32)
#: Transfer value meaning "the sRGB curve"; any other value is a power-law gamma (1.0 = linear).
SRGB = 0.0
LINEAR = 1.0
F16_MAX = 65504.0

_BYTES = {U8: 1, U16: 2, F16: 2, F32: 4}
_INT_MAX = {U8: 255, U16: 65535}
_ORDERS = ("RGBA", "BGRA")


class PixelFormatError(ValueError):
    """Pixel data that does not fit its format; ``str()`` is one user-readable line."""


class PixelFormat(NamedTuple):
    """4-channel pixels: ``kind`` (u8/u16/f16/f32), ``transfer`` (SRGB, or a gamma such as
    LINEAR=1.0 or 2.2) and the channel ``order`` in memory ("RGBA" or "BGRA")."""

    kind: str
    transfer: float = SRGB
    order: str = "RGBA"

    @property
    def pixel_bytes(self) -> int:
        return 4 * _BYTES[self.kind]

    @property
    def is_float(self) -> bool:
        return self.kind in (F16, F32)

    def check(self) -> None:
        if self.kind not in KINDS:
            raise PixelFormatError(f"pixel kind {self.kind!r}: expected one of {KINDS}")
        if self.order not in _ORDERS:
            raise PixelFormatError(f"channel order {self.order!r}: expected RGBA or BGRA")
        if self.transfer != SRGB and not 0.1 <= self.transfer <= 10.0:
            raise PixelFormatError(f"gamma {self.transfer}: expected 0.1..10")


def transfer_from_profile_name(name: str) -> float:
    """The transfer curve a colour profile's name announces: ``g10``/``linear``/``scRGB``
    -> LINEAR, ``gNN`` -> gamma N.N (Elle Stone's profiles, which Krita ships), else SRGB."""
    low = str(name).lower()
    if "linear" in low or "scrgb" in low:
        return LINEAR
    match = re.search(r"(?:^|[-_ ])g(\d)(\d)(?:[-_. ]|$)", low)
    if match:
        gamma = int(match.group(1)) + int(match.group(2)) / 10.0
        if gamma > 0:
            return gamma
    return SRGB


# ----------------------------------------------------------------------------- curves
def _srgb_encode(light: float) -> float:
    if light < 0.0:
        return -_srgb_encode(-light)
    if light <= 0.0031308:
        return 12.92 * light
    return 1.055 * light ** (1.0 / 2.4) - 0.055


def _srgb_decode(value: float) -> float:
    if value < 0.0:
        return -_srgb_decode(-value)
    if value <= 0.04045:
        return value / 12.92
    return ((value + 0.055) / 1.055) ** 2.4


def _curves(transfer: float):
    """(to_srgb, from_srgb): document-encoded <-> sRGB-encoded, both on normalised values."""
    if transfer == SRGB:
        return None, None  # identity

    def to_srgb(value: float) -> float:
        light = math.copysign(abs(value) ** transfer, value)
        return _srgb_encode(light)

    def from_srgb(value: float) -> float:
        light = _srgb_decode(value)
        return math.copysign(abs(light) ** (1.0 / transfer), light)

    return to_srgb, from_srgb


def _to8(encoded: float) -> int:
    """An sRGB-encoded value (nominally 0..1) as a byte; NaN -> 0."""
    if not encoded > 0.0:  # also NaN
        return 0
    if encoded >= 1.0:
        return 255
    return int(encoded * 255.0 + 0.5)


# ----------------------------------------------------------------------------- raw access
def _decode(data: bytes, fmt: PixelFormat):
    """All channel values of ``data`` as a sequence (ints for u8/u16, floats for f16/f32)."""
    if fmt.kind == U8:
        return data
    if fmt.kind == U16:
        return array("H", data)
    if fmt.kind == F32:
        return array("f", data)
    return struct.unpack(f"={len(data) // 2}e", data)


def _encode(values, fmt: PixelFormat) -> bytes:
    if fmt.kind == U8:
        return bytes(values)
    if fmt.kind == U16:
        return array("H", values).tobytes()
    if fmt.kind == F32:
        return array("f", values).tobytes()
    return struct.pack(f"={len(values)}e", *values)


def _channel_offsets(fmt: PixelFormat) -> tuple[int, int, int, int]:
    """Where R, G, B, A sit inside a pixel, in channels."""
    return (0, 1, 2, 3) if fmt.order == "RGBA" else (2, 1, 0, 3)


def _check_size(data: bytes, fmt: PixelFormat, what: str) -> int:
    fmt.check()
    if len(data) % fmt.pixel_bytes:
        raise PixelFormatError(
            f"{what}: {len(data)} bytes is not whole {fmt.pixel_bytes}-byte {fmt.kind} pixels"
        )
    return len(data) // fmt.pixel_bytes


class _Converter:
    """Per-format conversions of one channel value (cached tables for the integer kinds)."""

    def __init__(self, fmt: PixelFormat) -> None:
        self.fmt = fmt
        self.to_srgb, self.from_srgb = _curves(fmt.transfer)
        self.scale = float(_INT_MAX.get(fmt.kind, 1))
        self._to8_table = None
        self._from8_table = None
        self._thresholds: dict = {}

    def normalised(self, value) -> float:
        return value / self.scale

    def colour_to8(self, value) -> int:
        x = value / self.scale
        return _to8(self.to_srgb(x) if self.to_srgb else x)

    def alpha_to8(self, value) -> int:
        return _to8(value / self.scale)

    def to8_table(self, colour: bool) -> bytes:
        """Byte for every integer channel value (u8/u16 only)."""
        if self._to8_table is None:
            values = range(int(self.scale) + 1)
            self._to8_table = (
                bytes(self.alpha_to8(v) for v in values),
                bytes(self.colour_to8(v) for v in values),
            )
        return self._to8_table[colour]

    def thresholds(self, colour: bool) -> list:
        """The float values where the byte steps up: byte ``b`` is how many of these 255
        values are <= the value (``(b - 0.5) / 255 <= encoded < (b + 0.5) / 255``)."""
        if colour not in self._thresholds:
            edges = [(k + 0.5) / 255.0 for k in range(255)]
            if colour and self.from_srgb:
                edges = [self.from_srgb(e) for e in edges]
            self._thresholds[colour] = edges
        return self._thresholds[colour]

    def channel_to8(self, channel, colour: bool) -> bytes:
        """One channel's values as bytes (colour: with the curve; alpha: linear)."""
        if not self.fmt.is_float:
            return bytes(map(self.to8_table(colour).__getitem__, channel))
        if any(map(math.isnan, channel)):  # NaN -> 0, which bisect cannot say
            convert = self.colour_to8 if colour else self.alpha_to8
            return bytes(convert(v) for v in channel)
        return bytes(map(partial(bisect_right, self.thresholds(colour)), channel))

    def from_encoded(self, encoded: float):
        """An sRGB-encoded value back to the format's number (clamped for the integer kinds)."""
        x = self.from_srgb(encoded) if self.from_srgb else encoded
        if self.fmt.is_float:
            if self.fmt.kind == F16:
                return max(-F16_MAX, min(F16_MAX, x))
            return x
        if not x > 0.0:
            return 0
        return min(int(self.scale), int(x * self.scale + 0.5))

    def from8_table(self) -> list:
        """The format's number for each 8-bit sRGB value."""
        if self._from8_table is None:
            self._from8_table = [self.from_encoded(b / 255.0) for b in range(256)]
        return self._from8_table

    def from8(self, byte: int):
        return self.from8_table()[byte]


_CONVERTERS: dict = {}


def _converter(fmt: PixelFormat) -> _Converter:
    conv = _CONVERTERS.get(fmt)
    if conv is None:
        conv = _CONVERTERS[fmt] = _Converter(fmt)
    return conv


# ----------------------------------------------------------------------------- public API
def to_rgba8(data: bytes, fmt: PixelFormat) -> bytes:
    """The pixels as 8-bit sRGB-encoded RGBA (what the bridge takes)."""
    data = bytes(data)
    count = _check_size(data, fmt, "source pixels")
    offsets = _channel_offsets(fmt)
    if fmt.kind == U8 and fmt.transfer == SRGB:
        out = bytearray(count * 4)
        for dest, src in enumerate(offsets):
            out[dest::4] = data[src::4]
        return bytes(out)
    conv = _converter(fmt)
    values = _decode(data, fmt)
    out = bytearray(count * 4)
    for dest, src in enumerate(offsets):
        out[dest::4] = conv.channel_to8(values[src::4], colour=dest != 3)
    return bytes(out)


def composite(source: bytes, result_rgba8: bytes, mask: bytes | None, fmt: PixelFormat) -> bytes:
    """The bridge's 8-bit RGBA ``result_rgba8`` put back over ``source`` at ``fmt``.

    ``mask`` is one byte per pixel (None = the whole box was edited, as mask 255). Where it
    is 0 the output is ``source`` byte for byte; alpha is always the source's.
    """
    source = bytes(source)
    count = _check_size(source, fmt, "source pixels")
    if len(result_rgba8) != count * 4:
        raise PixelFormatError(
            f"the result has {len(result_rgba8)} bytes, expected {count} RGBA pixels"
        )
    if mask is not None and len(mask) != count:
        raise PixelFormatError(f"the mask has {len(mask)} bytes, expected {count}")
    conv = _converter(fmt)
    values = _decode(source, fmt)
    out = list(values)
    # partly selected runs; fully selected pixels take the result as is, unselected ones
    # the source's bytes (_copy_exact, below)
    partial_runs = [] if mask is None else list(re.finditer(b"[\x01-\xfe]+", mask))
    table = conv.from8_table()
    for dest, src in enumerate(_channel_offsets(fmt)[:3]):
        result = result_rgba8[dest::4]
        channel = list(map(table.__getitem__, result))
        for run in partial_runs:
            for i in range(run.start(), run.end()):
                channel[i] = _blend(conv, values[4 * i + src], result[i], mask[i] / 255.0)
        out[src::4] = channel
    blended = bytearray(_encode(out, fmt))
    _copy_exact(blended, source, mask, fmt)
    return bytes(blended)


def _blend(conv: _Converter, value, r8: int, a: float):
    """``result8 + (1 - a) * (source - source8)`` in sRGB-encoded values."""
    x = conv.normalised(value)
    encoded = conv.to_srgb(x) if conv.to_srgb else x
    if not math.isfinite(encoded):
        return conv.from8(r8)
    residual = encoded - _to8(encoded) / 255.0
    out = r8 / 255.0 + (1.0 - a) * residual
    # the blend lies between the source and the 8-bit range: only a source outside 0..1
    # (a float document's HDR values) can take the output outside it
    out = max(min(0.0, encoded), min(max(1.0, encoded), out))
    return conv.from_encoded(out)


def _copy_exact(out: bytearray, source: bytes, mask: bytes | None, fmt: PixelFormat) -> None:
    """Source bytes where the mask is 0, and the source's alpha everywhere."""
    size, cb = fmt.pixel_bytes, _BYTES[fmt.kind]
    alpha = _channel_offsets(fmt)[3] * cb
    for k in range(alpha, alpha + cb):
        out[k::size] = source[k::size]
    if mask is None:
        return
    for run in re.finditer(b"\x00+", mask):
        start, end = run.start() * size, run.end() * size
        out[start:end] = source[start:end]
