"""plugin_bridge/pixelformat.py: high-bit-depth pixels to 8-bit sRGB and back, checked
against numpy reference formulas (the module itself is stdlib only)."""

from __future__ import annotations

import numpy as np
import pytest

from plugin_bridge import pixelformat as pf

from .pixel_reference import engine_result, srgb_decode, srgb_encode, to_byte

DTYPES = {pf.U8: np.uint8, pf.U16: np.uint16, pf.F16: np.float16, pf.F32: np.float32}
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


@pytest.mark.parametrize(
    "fmt",
    [
        pf.PixelFormat(pf.U8, pf.SRGB, "BGRA"),
        pf.PixelFormat(pf.U16, pf.SRGB, "BGRA"),
        pf.PixelFormat(pf.U16, pf.LINEAR, "BGRA"),
        pf.PixelFormat(pf.F16, pf.LINEAR, "RGBA"),
        pf.PixelFormat(pf.F32, pf.LINEAR, "RGBA"),
        pf.PixelFormat(pf.F32, pf.SRGB, "RGBA"),
    ],
    ids=lambda f: f"{f.kind}-{f.transfer}-{f.order}",
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
        pf.to_rgba8(b"", pf.PixelFormat("u32"))


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
