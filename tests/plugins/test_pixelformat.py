"""plugin_bridge/pixelformat.py: high-bit-depth pixels to 8-bit sRGB and back, checked
against numpy reference formulas (the module itself is stdlib only)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from plugin_bridge import pixelformat as pf

from .pixel_reference import engine_result, srgb_decode, srgb_encode, to_byte

DTYPES = {
    pf.U8: np.uint8,
    pf.U16: np.uint16,
    pf.U32: np.uint32,
    pf.F16: np.float16,
    pf.F32: np.float32,
    pf.F64: np.float64,
}
LINEAR_F32 = pf.PixelFormat(pf.F32, pf.LINEAR, "RGBA")


def raw(values, kind) -> bytes:
    return np.asarray(values, dtype=DTYPES[kind]).tobytes()


def pixels(data: bytes, kind) -> np.ndarray:
    return np.frombuffer(data, dtype=DTYPES[kind]).reshape(-1, 4)


def sample(kind, count=300, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind in (pf.U8, pf.U16):
        top = 255 if kind == pf.U8 else 65535
        return rng.integers(0, top + 1, size=(count, 4))
    values = rng.uniform(-0.2, 1.3, size=(count, 4))
    values[::7, 0] = 4.0  # HDR
    values[:, 3] = rng.uniform(0, 1, size=count)
    return values


# ----------------------------------------------------------------------------- to 8-bit
def test_u8_bgra_is_swapped_to_rgba_and_u8_rgba_passes_through():
    bgra = bytes([1, 2, 3, 4, 10, 20, 30, 40])
    assert pf.to_rgba8(bgra, pf.PixelFormat(pf.U8, order="BGRA")) == bytes(
        [3, 2, 1, 4, 30, 20, 10, 40]
    )
    assert pf.to_rgba8(bgra, pf.PixelFormat(pf.U8)) == bgra


@pytest.mark.parametrize("order", ["RGBA", "BGRA"])
def test_u16_srgb_rounds_to_the_nearest_byte(order):
    values = sample(pf.U16)
    fmt = pf.PixelFormat(pf.U16, pf.SRGB, order)
    got = pixels(pf.to_rgba8(raw(values, pf.U16), fmt), pf.U8)
    rgba = values if order == "RGBA" else values[:, [2, 1, 0, 3]]
    assert np.array_equal(got, np.floor(rgba / 257 + 0.5))


@pytest.mark.parametrize("kind", [pf.U16, pf.F16, pf.F32])
def test_linear_values_get_the_srgb_curve_and_alpha_does_not(kind):
    values = sample(kind)
    fmt = pf.PixelFormat(kind, pf.LINEAR, "RGBA")
    stored = pixels(raw(values, kind), kind).astype(np.float64)  # after f16/f32 rounding
    norm = stored / 65535 if kind == pf.U16 else stored
    got = pixels(pf.to_rgba8(raw(values, kind), fmt), pf.U8)
    assert np.array_equal(got[:, :3], to_byte(srgb_encode(norm[:, :3])))
    assert np.array_equal(got[:, 3], to_byte(norm[:, 3]))


def test_gamma_22_values_are_re_encoded_with_the_srgb_curve():
    values = np.array([[0, 16384, 32768, 65535], [65535, 1000, 60000, 0]])
    fmt = pf.PixelFormat(pf.U16, 2.2, "RGBA")
    got = pixels(pf.to_rgba8(raw(values, pf.U16), fmt), pf.U8)
    expected = to_byte(srgb_encode((values[:, :3] / 65535) ** 2.2))
    assert np.array_equal(got[:, :3], expected)


def test_float_hdr_negative_and_nan_values_clip_to_the_byte_range():
    values = [[4.0, -1.0, float("nan"), 2.0], [float("inf"), 0.5, 1.0, float("nan")]]
    got = pixels(pf.to_rgba8(raw(values, pf.F32), LINEAR_F32), pf.U8)
    assert got.tolist() == [[255, 0, 0, 255], [255, 188, 255, 0]]


# ----------------------------------------------------------------------------- composite
def mask_for(count, seed=1) -> bytes:
    rng = np.random.default_rng(seed)
    mask = rng.choice([0, 0, 255, 255, 1, 64, 128, 200, 254], size=count).astype(np.uint8)
    return mask.tobytes()


def each_format(*specs):
    """Parametrize ``fmt`` over PixelFormat(kind, transfer, order) for each spec."""
    fmts = [pf.PixelFormat(*spec) for spec in specs]
    return pytest.mark.parametrize("fmt", fmts, ids=lambda f: f"{f.kind}-{f.transfer}-{f.order}")


@each_format(
    (pf.U8, pf.SRGB, "BGRA"),
    (pf.U16, pf.SRGB, "BGRA"),
    (pf.U16, pf.LINEAR, "BGRA"),
    (pf.F16, pf.LINEAR, "RGBA"),
    (pf.F32, pf.LINEAR, "RGBA"),
    (pf.F32, pf.SRGB, "RGBA"),
)
def test_unmasked_pixels_and_all_alpha_are_the_source_bytes(fmt):
    values = sample(fmt.kind, seed=3)
    source = raw(values, fmt.kind)
    if fmt.is_float:  # bit patterns a float round trip could change
        special = np.frombuffer(source, dtype=DTYPES[fmt.kind]).copy()
        special[0:4] = [-0.0, np.inf, -np.inf, 1e-30 if fmt.kind == pf.F32 else 1e-7]
        source = special.tobytes()
    count = len(source) // fmt.pixel_bytes
    rng = np.random.default_rng(2)
    result = rng.integers(0, 256, size=count * 4).astype(np.uint8).tobytes()
    mask = mask_for(count)
    out = pf.composite(source, result, mask, fmt)
    size = fmt.pixel_bytes
    alpha = 3 * size // 4  # alpha is the 4th channel in both orders
    for i, m in enumerate(mask):
        px_out, px_src = out[i * size : (i + 1) * size], source[i * size : (i + 1) * size]
        if m == 0:
            assert px_out == px_src, f"pixel {i} changed outside the mask"
        assert px_out[alpha:] == px_src[alpha:], f"pixel {i}: alpha changed"
    assert sum(m > 0 for m in mask) and out != source


def test_fully_masked_pixels_are_the_8bit_result_at_the_documents_depth():
    count = 256
    result = np.stack([np.arange(256)] * 4, axis=1).astype(np.uint8)  # every byte value
    mask = b"\xff" * count
    src16 = raw(np.full((count, 4), 12345), pf.U16)
    out = pixels(pf.composite(src16, result.tobytes(), mask, pf.PixelFormat(pf.U16)), pf.U16)
    assert np.array_equal(out[:, :3], result[:, :3].astype(np.int64) * 257)
    lin = pixels(
        pf.composite(src16, result.tobytes(), mask, pf.PixelFormat(pf.U16, pf.LINEAR)), pf.U16
    )
    expected = np.floor(srgb_decode(result[:, :3] / 255) * 65535 + 0.5)
    assert np.array_equal(lin[:, :3], expected)
    srcf = raw(np.full((count, 4), 0.25), pf.F32)
    flt = pixels(pf.composite(srcf, result.tobytes(), mask, LINEAR_F32), pf.F32)
    assert np.allclose(flt[:, :3], srgb_decode(result[:, :3] / 255), rtol=1e-6, atol=1e-9)
    # and the model's byte comes back from it
    assert pf.to_rgba8(flt.tobytes(), LINEAR_F32)[:3] == bytes(result[0, :3])
    back = pixels(pf.to_rgba8(flt.tobytes(), LINEAR_F32), pf.U8)
    assert np.array_equal(back[:, :3], result[:, :3])


def test_partly_masked_pixels_blend_the_full_precision_source_by_the_mask():
    """``out = result8 + (1 - a) * (source - source8)`` in sRGB-encoded values, which is
    ``(1 - a) * source + a * edit`` up to the rounding of the 8-bit result."""
    rng = np.random.default_rng(5)
    count = 400
    src = rng.integers(0, 65536, size=(count, 4))
    edit = rng.integers(0, 256, size=(count, 4))
    mask = rng.integers(1, 255, size=count).astype(np.uint8)
    mask[:50] = 1  # almost unselected: (almost) the source, at its precision
    fmt = pf.PixelFormat(pf.U16)
    source8 = pixels(pf.to_rgba8(raw(src, pf.U16), fmt), pf.U8).astype(np.int64)
    result = engine_result(source8, edit, mask)
    out = pixels(pf.composite(raw(src, pf.U16), result.tobytes(), mask.tobytes(), fmt), pf.U16)
    a = mask[:, None] / 255.0
    ideal = (1 - a) * src[:, :3] + a * edit[:, :3] * 257
    assert np.abs(out[:, :3] - ideal).max() <= 0.5 * 257 + 1
    exact = np.floor(
        np.clip(result[:, :3] / 255 + (1 - a) * (src[:, :3] / 65535 - source8[:, :3] / 255), 0, 1)
        * 65535
        + 0.5
    )
    assert np.abs(out[:, :3] - exact).max() <= 1  # float rounding at .5 boundaries
    assert np.array_equal(out[:, 3], src[:, 3])


def test_hdr_source_values_survive_partial_masks_but_not_full_ones():
    src = raw([[4.0, 0.5, 0.5, 1.0]] * 3, pf.F32)
    mask = np.array([0, 128, 255], dtype=np.uint8)
    source8 = pixels(pf.to_rgba8(src, LINEAR_F32), pf.U8).astype(np.int64)
    result = engine_result(source8, np.full((3, 4), 128), mask)
    out = pixels(pf.composite(src, result.tobytes(), mask.tobytes(), LINEAR_F32), pf.F32)
    assert out[0, 0] == 4.0
    a = 128 / 255
    half = srgb_decode((1 - a) * srgb_encode(4.0) + a * 128 / 255)
    assert 1.0 < out[1, 0] < 4.0 and out[1, 0] == pytest.approx(half, rel=0.01)
    assert out[2, 0] == pytest.approx(srgb_decode(128 / 255), rel=1e-6)


def test_no_mask_means_the_whole_box_is_the_result():
    src = raw(sample(pf.U16, count=10), pf.U16)
    result = bytes(range(40))
    out = pixels(pf.composite(src, result, None, pf.PixelFormat(pf.U16, order="BGRA")), pf.U16)
    rgba = np.frombuffer(result, dtype=np.uint8).reshape(-1, 4).astype(np.int64)
    assert np.array_equal(out[:, [2, 1, 0]], rgba[:, :3] * 257)
    assert np.array_equal(out[:, 3], pixels(src, pf.U16)[:, 3])


def test_sizes_that_do_not_fit_are_one_line_errors():
    fmt = pf.PixelFormat(pf.U16)
    with pytest.raises(pf.PixelFormatError, match="not whole 8-byte u16 pixels"):
        pf.to_rgba8(b"\x00" * 12, fmt)
    with pytest.raises(pf.PixelFormatError, match="expected 2 RGBA pixels"):
        pf.composite(b"\x00" * 16, b"\x00" * 4, None, fmt)
    with pytest.raises(pf.PixelFormatError, match="mask has 1 bytes, expected 2"):
        pf.composite(b"\x00" * 16, b"\x00" * 8, b"\x00", fmt)
    with pytest.raises(pf.PixelFormatError, match="pixel kind"):
        pf.to_rgba8(b"", pf.PixelFormat("u64"))
    with pytest.raises(pf.PixelFormatError, match="different sizes"):
        pf.blend(b"\0" * 6, b"\0" * 3, b"\0" * 6, None, pf.PixelFormat(pf.U8, order="RGB"))
    with pytest.raises(pf.PixelFormatError, match="the mask has 1 bytes, expected 2"):
        pf.blend(b"\0" * 6, b"\0" * 6, b"\0" * 6, b"\0", pf.PixelFormat(pf.U8, order="RGB"))


# ----------------------------------------------------------------------------- blend
# (native buffers, as GIMP passes them after GEGL's conversion)
def pack(code: str, *values) -> bytes:
    return struct.pack(f"={len(values)}{code}", *values)


def test_blend_keeps_source_at_0_result_at_255_and_blends_the_residual_between():
    fmt = pf.PixelFormat(pf.U16)  # sRGB-encoded: the numbers are the blend's values
    source = pack("H", 1001, 2001, 3001, 40001) * 3
    sent = pack("H", 1028, 2056, 2827, 40092) * 3  # the 8-bit copy, converted back
    result = pack("H", 9000, 9000, 9000, 40092) * 3
    out = pf.blend(source, result, sent, bytes([0, 255, 51]), fmt)
    pixels = struct.unpack("=12H", out)
    assert pixels[0:4] == (1001, 2001, 3001, 40001)  # mask 0: the source
    assert pixels[4:8] == (9000, 9000, 9000, 40001)  # mask 255: the result, source alpha
    keep = 1 - 51 / 255
    expected = [
        round(9000 + keep * (s - e)) for s, e in zip((1001, 2001, 3001), (1028, 2056, 2827))
    ]
    assert list(pixels[8:11]) == expected and pixels[11] == 40001


def test_blend_without_mask_is_the_result_with_the_source_alpha():
    fmt = pf.PixelFormat(pf.F32, pf.LINEAR)
    source, result = pack("f", 4.0, -1.0, 0.5, 0.25), pack("f", 1.0, 0.0, 0.5, 1.0)
    out = pf.blend(source, result, result, None, fmt)
    assert struct.unpack("=4f", out) == (1.0, 0.0, 0.5, 0.25)


def test_blend_clamps_integers_and_stays_between_source_and_result():
    u8 = pf.PixelFormat(pf.U8, order="RGB")
    out = pf.blend(pack("B", 250, 5, 0), pack("B", 255, 0, 0), pack("B", 0, 250, 0), b"\x01", u8)
    assert struct.unpack("=3B", out) == (255, 0, 0)
    half = pf.PixelFormat(pf.F16, order="RGB")
    out = pf.blend(
        pack("e", 60000.0, 0, 0), pack("e", 60000.0, 0, 0), pack("e", 0.0, 0, 0), b"\x01", half
    )
    assert struct.unpack("=3e", out)[0] == 60000.0  # not source + residual (beyond f16)


def test_partial_blend_is_in_srgb_encoded_values_for_a_linear_document():
    """A linear float pixel of 4.0 (sent as 1.0) under a black result at m = 128/255: the
    sRGB-encoded blend keeps (1 - m) * (encode(4.0) - 1), decoded, not (1 - m) * 3.0."""
    fmt = pf.PixelFormat(pf.F32, pf.LINEAR, order="RGB")
    out = pf.blend(
        pack("f", 4.0, 0.5, 0.0), pack("f", 0, 0, 0), pack("f", 1.0, 0.5, 0.0), b"\x80", fmt
    )
    keep = 1 - 128 / 255
    expected = srgb_decode(keep * (srgb_encode(4.0) - 1.0))
    got = struct.unpack("=3f", out)
    assert got[0] == pytest.approx(expected, rel=1e-6)
    assert got[0] != pytest.approx(keep * 3.0, rel=0.1)
    assert got[1:] == (0.0, 0.0)  # no residual: the result (the source matched what was sent)


@each_format(
    (pf.U32, pf.SRGB, "RGBA"),
    (pf.F64, pf.LINEAR, "RGBA"),
    (pf.U16, pf.LINEAR, "RGB"),
    (pf.F16, pf.SRGB, "RGB"),
)
def test_more_formats_round_trip_and_keep_unmasked_bytes(fmt):
    """GIMP's other precisions: u32, double, layers without alpha."""
    rng = np.random.default_rng(7)
    n, count = fmt.channels, 64
    if fmt.is_float:
        values = rng.uniform(-0.2, 1.3, size=(count, n))
    else:
        values = rng.integers(0, {pf.U16: 65536, pf.U32: 2**32}[fmt.kind], size=(count, n))
    source = np.asarray(values, dtype=DTYPES[fmt.kind]).tobytes()
    sent = pf.to_rgba8(source, fmt)
    assert len(sent) == count * 4
    if n == 3:
        assert set(sent[3::4]) == {255}
    # every byte comes back from its own conversion
    rgba = bytes(rng.integers(0, 256, size=count * 4).astype(np.uint8))
    native = pf.from_rgba8(rgba, fmt)
    assert [b for i, b in enumerate(pf.to_rgba8(native, fmt)) if n == 4 or i % 4 != 3] == [
        b for i, b in enumerate(rgba) if n == 4 or i % 4 != 3
    ]
    mask = mask_for(count, seed=4)
    out = pf.composite(source, rgba, mask, fmt, sent_rgba8=sent)
    size = fmt.pixel_bytes
    for i, m in enumerate(mask):
        px_out, px_src = out[i * size : (i + 1) * size], source[i * size : (i + 1) * size]
        if m == 0:
            assert px_out == px_src, f"pixel {i} changed outside the mask"
        elif m == 255:
            assert px_out[: 3 * size // n] == native[i * size : i * size + 3 * size // n], i
        if n == 4:
            assert px_out[3 * size // 4 :] == px_src[3 * size // 4 :], f"pixel {i}: alpha"


@pytest.mark.parametrize(
    ("name", "transfer"),
    [
        ("sRGB-elle-V2-srgbtrc.icc", pf.SRGB),
        ("sRGB-elle-V2-g10.icc", pf.LINEAR),
        ("Rec2020-elle-V4-g10.icc", pf.LINEAR),
        ("ClayRGB-elle-V4-g22.icc", 2.2),
        ("Rec2020-elle-V4-g18.icc", 1.8),
        ("scRGB (linear)", pf.LINEAR),
        ("sRGB built-in", pf.SRGB),
        ("", pf.SRGB),
    ],
)
def test_transfer_curve_from_profile_names(name, transfer):
    assert pf.transfer_from_profile_name(name) == transfer
