"""Tiny images and PNG helpers for the bridge tests (tests may use numpy/PIL)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

#: Settings that keep every edit in these tests to a fraction of a second.
FAST = {"steps": 2, "working_size": 32}


def rgba_image(seed: int, width: int = 32, height: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    img[..., 3] = rng.integers(128, 256, (height, width), dtype=np.uint8)
    return img


def box_mask(x0: int, y0: int, x1: int, y1: int, width: int = 32, height: int = 24) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[y0:y1, x0:x1] = 255
    return mask


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def png_array(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.array(img)
