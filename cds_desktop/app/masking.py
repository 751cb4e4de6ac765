"""Mask painting and selection operations on (H, W) uint8 masks (0 = keep, 255 = edit).

Pure numpy/PIL so they are easy to test. Every function changes ``mask`` in place and returns
the box it touched as (x0, y0, x1, y1) (empty box -> None), which the undo commands store.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

Box = tuple[int, int, int, int]


def clip_box(box: Box, shape: tuple[int, ...]) -> Box | None:
    h, w = shape[:2]
    x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def union(a: Box | None, b: Box | None) -> Box | None:
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def dab(mask: np.ndarray, cx: float, cy: float, size: float, hardness: float, erase: bool):
    """Stamp one round brush dab of diameter ``size``; hardness 1 = hard edge, 0 = soft."""
    r = max(0.5, size / 2.0)
    box = clip_box(
        (math.floor(cx - r), math.floor(cy - r), math.ceil(cx + r) + 1, math.ceil(cy + r) + 1),
        mask.shape,
    )
    if box is None:
        return None
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy) / r  # pixel centres; 1 = brush edge
    inner = min(0.999, max(0.0, float(hardness)))
    a = np.clip((1.0 - d) / (1.0 - inner), 0.0, 1.0)
    a = a * a * (3 - 2 * a)  # smoothstep falloff
    value = np.round(a * 255).astype(np.uint8)
    view = mask[y0:y1, x0:x1]
    if erase:
        np.minimum(view, 255 - value, out=view)
    else:
        np.maximum(view, value, out=view)
    return box


def segment(mask, p0, p1, size: float, hardness: float, erase: bool) -> Box | None:
    """Dabs from p0 (exclusive) to p1 (inclusive), spaced at a quarter of the diameter."""
    (ax, ay), (bx, by) = p0, p1
    spacing = max(0.5, size / 4.0)
    n = max(1, int(math.ceil(math.hypot(bx - ax, by - ay) / spacing)))
    box = None
    for i in range(1, n + 1):
        t = i / n
        box = union(box, dab(mask, ax + (bx - ax) * t, ay + (by - ay) * t, size, hardness, erase))
    return box


def fill_shape(mask: np.ndarray, box: Box, ellipse: bool, subtract: bool) -> Box | None:
    """Add (or subtract) a rectangle or an ellipse inscribed in ``box`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (
        min(box[0], box[2]),
        min(box[1], box[3]),
        max(box[0], box[2]),
        max(box[1], box[3]),
    )
    clipped = clip_box((x0, y0, x1, y1), mask.shape)
    if clipped is None:
        return None
    cx0, cy0, cx1, cy1 = clipped
    if ellipse:
        yy, xx = np.mgrid[cy0:cy1, cx0:cx1].astype(np.float32)
        rx, ry = max((x1 - x0) / 2, 0.5), max((y1 - y0) / 2, 0.5)
        inside = ((xx + 0.5 - (x0 + x1) / 2) / rx) ** 2 + ((yy + 0.5 - (y0 + y1) / 2) / ry) ** 2
        shape = inside <= 1.0
    else:
        shape = np.ones((cy1 - cy0, cx1 - cx0), bool)
    view = mask[cy0:cy1, cx0:cx1]
    view[shape] = 0 if subtract else 255
    return clipped


def invert(mask: np.ndarray) -> Box | None:
    np.subtract(255, mask, out=mask)
    return full_box(mask)


def clear(mask: np.ndarray) -> Box | None:
    mask[...] = 0
    return full_box(mask)


def from_alpha(mask: np.ndarray, pixels: np.ndarray) -> Box | None:
    """Mask = the layer's alpha channel (opaque pixels are edited)."""
    mask[...] = pixels[..., 3]
    return full_box(mask)


def feather(mask: np.ndarray, radius: float) -> Box | None:
    """Gaussian-blur the mask edge by ``radius`` pixels."""
    if radius <= 0:
        return None
    blurred = Image.fromarray(mask).filter(ImageFilter.GaussianBlur(radius))
    mask[...] = np.asarray(blurred)
    return full_box(mask)


def full_box(mask: np.ndarray) -> Box | None:
    h, w = mask.shape[:2]
    return (0, 0, w, h) if h and w else None
