"""High-bit-depth pixels for the plug-ins: to 8-bit sRGB for the model and back.

The model (and the bridge's PNGs) work in 8-bit sRGB-encoded RGBA. A host document may hold
8-, 16- or 32-bit integers or 16-, 32- or 64-bit floats per channel, RGB or RGBA, encoded
with the sRGB curve, a power-law gamma, or linearly. This module converts a box of the
document's pixels to what the bridge takes (:func:`to_rgba8`) and puts the bridge's 8-bit
answer back at the document's precision. :func:`blend` is the one rule both plug-ins use for
that (Krita through :func:`composite`, GIMP directly, after GEGL has converted the 8-bit
pixels to the layer's format):

* where the mask is 0 the output pixel is the source pixel, **byte for byte**;
* the alpha channel is always the source's own (the engine never edits alpha);
* where the mask is 255 the output is the 8-bit result at the document's format;
* in between (weight ``a = mask / 255``), in sRGB-encoded values,
  ``out = result8 + (1 - a) * (source - source8)``: the 8-bit result plus the part of the
  source that 8 bits could not hold, in proportion to how unselected the pixel is (see
  :func:`blend` for why in sRGB-encoded values).

Colour primaries are not converted here (the transfer curve is): Krita's documents are edited
with their channel values read as if they were sRGB's; GIMP converts with its own colour
management before calling :func:`blend`.

Standard library only (struct/array, no numpy); runs on Python 3.8+. Host byte order, as
Krita's ``pixelData`` and GEGL's buffers use.
"""

from __future__ import annotations

import math
import re
import struct
from array import array, typecodes
from bisect import bisect_right
from functools import partial
from typing import NamedTuple

U8, U16, U32, F16, F32, F64 = "u8", "u16", "u32", "f16", "f32", "f64"
KINDS = (U8, U16, U32, F16, F32, F64)
#: Transfer value meaning "the sRGB curve"; any other value is a power-law gamma (1.0 = linear).
SRGB = 0.0
LINEAR = 1.0
F16_MAX = 65504.0

_BYTES = {U8: 1, U16: 2, U32: 4, F16: 2, F32: 4, F64: 8}
_INT_MAX = {U8: 255, U16: 65535, U32: 4294967295}
#: struct codes of one channel value (native byte order with "=")
_CODES = {U8: "B", U16: "H", U32: "I", F16: "e", F32: "f", F64: "d"}
#: Integer kinds small enough for a lookup table of every value.
_TABLE_KINDS = (U8, U16)
_ORDERS = ("RGBA", "BGRA", "RGB")


class PixelFormatError(ValueError):
    """Pixel data that does not fit its format; ``str()`` is one user-readable line."""


class PixelFormat(NamedTuple):
    """Pixels of ``kind`` (u8/u16/u32/f16/f32/f64) channels, ``transfer`` (SRGB, or a gamma
    such as LINEAR=1.0 or 2.2) and the channel ``order`` in memory ("RGBA", "BGRA", or "RGB"
    for pixels without alpha)."""

    kind: str
    transfer: float = SRGB
    order: str = "RGBA"

    @property
    def channels(self) -> int:
        return len(self.order)

    @property
    def has_alpha(self) -> bool:
        return "A" in self.order

    @property
    def pixel_bytes(self) -> int:
        return self.channels * _BYTES[self.kind]

    @property
    def is_float(self) -> bool:
        return self.kind in (F16, F32, F64)

    def check(self) -> None:
        if self.kind not in KINDS:
            raise PixelFormatError(f"pixel kind {self.kind!r}: expected one of {KINDS}")
        if self.order not in _ORDERS:
            raise PixelFormatError(f"channel order {self.order!r}: expected RGBA, BGRA or RGB")
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
    """All channel values of ``data`` as a sequence (ints for the integer kinds, floats
    for the others)."""
    if fmt.kind == U8:
        return data
    code = _CODES[fmt.kind]
    if _has_array(fmt):
        return array(code, data)
    return struct.unpack(f"={len(data) // _BYTES[fmt.kind]}{code}", data)


def _has_array(fmt: PixelFormat) -> bool:
    """Whether ``array`` holds the kind's values (not f16; and sizes as on every common
    platform)."""
    code = _CODES[fmt.kind]
    return code in typecodes and array(code).itemsize == _BYTES[fmt.kind]


def _channel_offsets(fmt: PixelFormat) -> tuple[int, int, int]:
    """Where R, G, B sit inside a pixel, in channels."""
    return (2, 1, 0) if fmt.order == "BGRA" else (0, 1, 2)


def _alpha_offset(fmt: PixelFormat) -> int | None:
    """Where alpha sits inside a pixel, in channels (None: the format has none)."""
    return 3 if fmt.has_alpha else None


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

    def encoded(self, value) -> float:
        """A colour channel value as an sRGB-encoded number (nominally 0..1)."""
        x = value / self.scale
        return self.to_srgb(x) if self.to_srgb else x

    def colour_to8(self, value) -> int:
        return _to8(self.encoded(value))

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
        if self.fmt.kind in _TABLE_KINDS:
            return bytes(map(self.to8_table(colour).__getitem__, channel))
        if any(map(math.isnan, channel)):  # NaN -> 0, which bisect cannot say
            convert = self.colour_to8 if colour else self.alpha_to8
            return bytes(convert(v) for v in channel)
        if self.scale != 1.0:  # u32: normalised first
            channel = [v / self.scale for v in channel]
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

    def alpha_from8(self, byte: int):
        """An 8-bit alpha value in the format's numbers (alpha has no curve)."""
        if self.fmt.is_float:
            return byte / 255.0
        return (byte * int(self.scale) + 127) // 255

    def blend(self, source, result, sent, keep: float):
        """One colour channel of a partly selected pixel (see :func:`blend`)."""
        s, r, low = self.encoded(source), self.encoded(result), self.encoded(sent)
        if not (math.isfinite(s) and math.isfinite(r) and math.isfinite(low)):
            return result
        out = r + keep * (s - low)
        # between the source, the result and the 0..1 range: only a source outside 0..1 (a
        # float document's HDR values) can take the output outside it
        out = max(min(0.0, s, r), min(max(1.0, s, r), out))
        return self.from_encoded(out)


_CONVERTERS: dict = {}


def _converter(fmt: PixelFormat) -> _Converter:
    conv = _CONVERTERS.get(fmt)
    if conv is None:
        conv = _CONVERTERS[fmt] = _Converter(fmt)
    return conv


# ----------------------------------------------------------------------------- public API
def to_rgba8(data: bytes, fmt: PixelFormat) -> bytes:
    """The pixels as 8-bit sRGB-encoded RGBA (what the bridge takes); alpha 255 for RGB."""
    data = bytes(data)
    count = _check_size(data, fmt, "source pixels")
    n, alpha = fmt.channels, _alpha_offset(fmt)
    out = bytearray(b"\xff" * (count * 4))
    sources = list(_channel_offsets(fmt)) + ([] if alpha is None else [alpha])
    if fmt.kind == U8 and fmt.transfer == SRGB:  # bytes already: only reordered
        for dest, src in enumerate(sources):
            out[dest::4] = data[src::n]
        return bytes(out)
    conv = _converter(fmt)
    values = _decode(data, fmt)
    for dest, src in enumerate(sources):
        out[dest::4] = conv.channel_to8(values[src::n], colour=dest != 3)
    return bytes(out)


def from_rgba8(rgba8: bytes, fmt: PixelFormat) -> bytes:
    """8-bit sRGB-encoded RGBA (what the bridge returns) in the format ``fmt``: colour through
    the format's curve, alpha linearly (dropped for RGB)."""
    if len(rgba8) % 4:
        raise PixelFormatError(f"{len(rgba8)} bytes is not whole 8-bit RGBA pixels")
    fmt.check()
    rgba8 = bytes(rgba8)
    conv, n, count = _converter(fmt), fmt.channels, len(rgba8) // 4
    colour, alpha_table = conv.from8_table(), [conv.alpha_from8(b) for b in range(256)]
    channels = [(src, dest, colour) for src, dest in enumerate(_channel_offsets(fmt))]
    if fmt.has_alpha:
        channels.append((3, _alpha_offset(fmt), alpha_table))
    if fmt.kind == U8:  # a byte per value: translate
        out = bytearray(count * n)
        for src, dest, table in channels:
            out[dest::n] = rgba8[src::4].translate(bytes(table))
        return bytes(out)
    code = _CODES[fmt.kind]
    if _has_array(fmt):
        values = array(code, bytes(count * fmt.pixel_bytes))
        for src, dest, table in channels:
            values[dest::n] = array(code, map(table.__getitem__, rgba8[src::4]))
        return values.tobytes()
    listed: list = [0] * (count * n)  # f16: struct
    for src, dest, table in channels:
        listed[dest::n] = map(table.__getitem__, rgba8[src::4])
    return struct.pack(f"={len(listed)}{code}", *listed)


def blend(source: bytes, result: bytes, sent: bytes, mask: bytes | None, fmt: PixelFormat) -> bytes:
    """The new layer's pixels: the 8-bit ``result`` put back over ``source`` by the mask.

    The one implementation of this rule for both plug-ins. All three buffers cover the same
    box in the format ``fmt``: ``source`` holds the source layer's own pixels, ``result`` the
    bridge's 8-bit result and ``sent`` the 8-bit pixels that were sent, both converted to
    ``fmt`` by the host (GIMP: GEGL, with its colour management; Krita: :func:`from_rgba8`).
    ``mask`` has one byte per pixel (None: the whole box was edited, as mask 255). Per pixel,
    with ``a = mask / 255``:

    * a = 0: the source pixel, byte for byte;
    * a = 1: the result (the edit has 8-bit precision);
    * in between: ``result + (1 - a) * (source - sent)`` **in sRGB-encoded values** (the
      format's numbers through its transfer curve, normalised to 0..1), kept between the
      source, the result and 0..1, then converted back;
    * alpha is the source's everywhere (the engine never changes alpha).

    Why sRGB-encoded values: the engine blends its edit into the 8-bit source in those
    values, ``result = (1 - a) * sent + a * edit`` (``engine/images.composite``), so adding
    ``(1 - a) * (source - sent)`` in the same values gives exactly
    ``(1 - a) * source + a * edit``: the engine's own blend, with the source at full
    precision. In any other space (a linear-light document's own numbers, say) the two terms
    do not combine into a blend: a soft edge over HDR values (sent as 1.0) would fall off
    differently from the same edge over values in 0..1, and a partly selected pixel would
    not lie between what the engine mixed.
    """
    source = bytes(source)
    count = _check_size(source, fmt, "source pixels")
    if not len(result) == len(sent) == len(source):
        raise PixelFormatError(
            f"pixel buffers of different sizes ({len(source)}, {len(result)} and "
            f"{len(sent)} bytes): cannot blend the result"
        )
    if mask is not None and len(mask) != count:
        raise PixelFormatError(f"the mask has {len(mask)} bytes, expected {count}")
    out = bytearray(result)
    if mask is not None:
        conv, n, size = _converter(fmt), fmt.channels, fmt.pixel_bytes
        colour = _channel_offsets(fmt)
        for run in re.finditer(b"[\x01-\xfe]+", mask):  # partly selected pixels
            start, end = run.span()
            layout = f"={(end - start) * n}{_CODES[fmt.kind]}"
            src = struct.unpack_from(layout, source, start * size)
            low = struct.unpack_from(layout, sent, start * size)
            values = list(struct.unpack_from(layout, out, start * size))
            for i in range(end - start):
                keep = 1.0 - mask[start + i] / 255.0
                for k in (i * n + c for c in colour):
                    values[k] = conv.blend(src[k], values[k], low[k], keep)
            struct.pack_into(layout, out, start * size, *values)
    _copy_exact(out, source, mask, fmt)
    return bytes(out)


def composite(
    source: bytes,
    result_rgba8: bytes,
    mask: bytes | None,
    fmt: PixelFormat,
    sent_rgba8: bytes | None = None,
) -> bytes:
    """:func:`blend` for 8-bit RGBA ``result_rgba8`` (the bridge's answer) and ``sent_rgba8``
    (what was sent; default: :func:`to_rgba8` of ``source``), converted to ``fmt`` here."""
    count = _check_size(bytes(source), fmt, "source pixels")
    if len(result_rgba8) != count * 4:
        raise PixelFormatError(
            f"the result has {len(result_rgba8)} bytes, expected {count} RGBA pixels"
        )
    result = from_rgba8(result_rgba8, fmt)
    partly = mask is not None and bool(bytes(mask).translate(None, b"\x00\xff"))
    if not partly:  # ``sent`` is read only where the mask is neither 0 nor 255
        sent = result
    else:
        sent = from_rgba8(to_rgba8(source, fmt) if sent_rgba8 is None else sent_rgba8, fmt)
    return blend(source, result, sent, mask, fmt)


def _copy_exact(out: bytearray, source: bytes, mask: bytes | None, fmt: PixelFormat) -> None:
    """Source bytes where the mask is 0, and the source's alpha everywhere."""
    size, cb = fmt.pixel_bytes, _BYTES[fmt.kind]
    alpha = _alpha_offset(fmt)
    if alpha is not None:
        for k in range(alpha * cb, (alpha + 1) * cb):
            out[k::size] = source[k::size]
    if mask is None:
        return
    for run in re.finditer(b"\x00+", mask):
        start, end = run.start() * size, run.end() * size
        out[start:end] = source[start:end]
