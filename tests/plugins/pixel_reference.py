"""Reference formulas (numpy) the plug-in tests check pixel conversions against: the sRGB
curve, the engine's 8-bit blend, and Krita's pixelData layouts."""

from __future__ import annotations

import numpy as np

#: Krita depth -> (numpy dtype of a channel, where R, G, B, A sit in pixelData)
DEPTHS = {
    "U8": (np.uint8, [2, 1, 0, 3]),
    "U16": (np.uint16, [2, 1, 0, 3]),
    "F16": (np.float16, [0, 1, 2, 3]),
    "F32": (np.float32, [0, 1, 2, 3]),
}


def srgb_encode(light):
    light = np.asarray(light, dtype=np.float64)
    mag = np.abs(light)
    enc = np.where(mag <= 0.0031308, 12.92 * mag, 1.055 * mag ** (1 / 2.4) - 0.055)
    return np.sign(light) * enc


def srgb_decode(value):
    value = np.asarray(value, dtype=np.float64)
    mag = np.abs(value)
    dec = np.where(mag <= 0.04045, mag / 12.92, ((mag + 0.055) / 1.055) ** 2.4)
    return np.sign(value) * dec


def to_byte(encoded):
    encoded = np.nan_to_num(np.asarray(encoded, dtype=np.float64), nan=0.0)
    return np.floor(np.clip(encoded, 0, 1) * 255 + 0.5).astype(np.uint8)


def engine_result(source8: np.ndarray, edit: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """What the engine returns: the 8-bit source blended with its edit by the mask."""
    a = mask[:, None] / 255.0
    blend = np.floor((1 - a) * source8[:, :3] + a * edit[:, :3] + 0.5)
    return np.concatenate([blend, source8[:, 3:]], axis=1).astype(np.uint8)


def as_rgba(raw: bytes, depth: str) -> np.ndarray:
    """pixelData bytes of ``depth`` as an (n, 4) float64 R, G, B, A array (Krita's values)."""
    dtype, order = DEPTHS[depth]
    return np.frombuffer(raw, dtype=dtype).reshape(-1, 4)[:, order].astype(np.float64)


def model_float(px: np.ndarray, depth: str, linear: bool) -> np.ndarray:
    """Reference: one pixel's Krita values -> sRGB-encoded colour (unclipped floats)."""
    norm = px / 65535 if depth == "U16" else px / 255 if depth == "U8" else px
    return srgb_encode(norm[:3]) if linear else norm[:3]


def model_bytes(rgba: np.ndarray, depth: str, linear: bool) -> np.ndarray:
    """Reference: Krita values -> the 8-bit sRGB the model should get."""
    norm = rgba / 65535 if depth == "U16" else rgba / 255 if depth == "U8" else rgba
    colour = srgb_encode(norm[:, :3]) if linear else norm[:, :3]
    return np.concatenate([to_byte(colour), to_byte(norm[:, 3:])], axis=1)
