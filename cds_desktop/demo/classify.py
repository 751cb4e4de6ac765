"""A deterministic classifier for demo-world images: where the object is, its colour, its shape.

Used to score the demo model (generated samples, CDS edits) without any learned judge:
1. background: a plane per channel fitted to the border pixels (with one round of outlier
   rejection, so an object touching the border does not drag it);
2. object: pixels far from the background; its colour is the median of the most distant ones;
   each pixel's coverage is its projection on (object colour − background), the mask is
   coverage ≥ 0.5 restricted to the largest 4-connected component;
3. colour: nearest palette hue (saturation too low → "none");
4. shape: nearest prototype in two rotation-tolerant features — bounding-box fill
   (square 1, circle π/4, triangle 1/2) and area over the circle through the farthest pixel
   (circle 1, square 2/π, triangle 3√3/(4π)).

numpy only.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np

from cds_desktop.demo.world import PALETTE, SHAPES

NONE = "none"
DIFF_THRESHOLD = 40.0  # RGB distance from the background that surely belongs to an object
MIN_PIXELS = 12  # smaller components are not an object
MIN_SATURATION = 0.2
# Shape prototypes in (bbox fill, area / (π r_max²)), measured on clean scenes.
SHAPE_PROTOTYPES: dict[str, tuple[float, float]] = {
    "circle": (math.pi / 4, 0.94),
    "square": (0.99, 2 / math.pi),
    "triangle": (0.53, 0.44),
}
_PALETTE_HUES = {
    name: colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0] for name, rgb in PALETTE.items()
}


def _as_float(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] < 3:
        raise ValueError(f"img shape={img.shape}: expected H×W×3 (RGB)")
    return img[:, :, :3].astype(np.float32)


def background_model(img: np.ndarray) -> np.ndarray:
    """Estimate the background (H×W×3 float) as a plane per channel through the border pixels."""
    rgb = _as_float(img)
    h, w, _ = rgb.shape
    ring = np.zeros((h, w), dtype=bool)
    ring[[0, -1], :] = True
    ring[:, [0, -1]] = True
    ys, xs = np.nonzero(ring)
    design = np.stack([np.ones_like(xs), xs / w, ys / h], axis=1).astype(np.float32)
    values = rgb[ys, xs]
    keep = np.ones(len(xs), dtype=bool)
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)
        residual = np.linalg.norm(design @ coef - values, axis=1)
        keep = residual <= max(np.percentile(residual, 70) * 3.0, 6.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return coef[0] + (xx / w)[..., None] * coef[1] + (yy / h)[..., None] * coef[2]


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of ``mask`` (all False if empty)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask.copy()
    big = np.iinfo(np.int64).max
    labels = np.where(mask, np.arange(mask.size, dtype=np.int64).reshape(mask.shape), big)
    while True:  # propagate the smallest index through each component
        new = labels.copy()
        new[1:, :] = np.minimum(new[1:, :], labels[:-1, :])
        new[:-1, :] = np.minimum(new[:-1, :], labels[1:, :])
        new[:, 1:] = np.minimum(new[:, 1:], labels[:, :-1])
        new[:, :-1] = np.minimum(new[:, :-1], labels[:, 1:])
        new = np.where(mask, new, big)
        if np.array_equal(new, labels):
            break
        labels = new
    ids, counts = np.unique(labels[mask], return_counts=True)
    return labels == ids[np.argmax(counts)]


def _object(img: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(mask, object RGB) — mask all False and None when no object stands out."""
    rgb = _as_float(img)
    diff = rgb - background_model(rgb)
    dist = np.linalg.norm(diff, axis=2)
    core = largest_component(dist > DIFF_THRESHOLD)
    if core.sum() < MIN_PIXELS:
        return np.zeros(dist.shape, dtype=bool), None
    strong = core & (dist >= np.percentile(dist[core], 60))
    direction = np.median(diff[strong], axis=0)
    alpha = diff @ direction / float(direction @ direction)
    mask = largest_component(alpha >= 0.5)
    if mask.sum() < MIN_PIXELS:
        return np.zeros(dist.shape, dtype=bool), None
    return mask, np.median(rgb[strong], axis=0)


def object_mask(img: np.ndarray) -> np.ndarray:
    """Boolean H×W mask of the (largest) object in an RGB image."""
    return _object(img)[0]


def colour_of(rgb: np.ndarray) -> str:
    """Nearest palette colour by hue; "none" for a grey."""
    hue, sat, _ = colorsys.rgb_to_hsv(*(float(c) / 255 for c in rgb))
    if sat < MIN_SATURATION:
        return NONE

    def hue_distance(name: str) -> float:
        d = abs(hue - _PALETTE_HUES[name])
        return min(d, 1.0 - d)

    return min(_PALETTE_HUES, key=hue_distance)


def shape_features(mask: np.ndarray) -> tuple[float, float]:
    """(bounding-box fill, area / area of the circle through the farthest pixel corner)."""
    ys, xs = np.nonzero(mask)
    area = float(len(xs))
    fill = area / float((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1))
    cx, cy = xs.mean(), ys.mean()
    r_max = float(np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2).max()) + 0.5
    return fill, area / (math.pi * r_max * r_max)


def shape_of(mask: np.ndarray) -> str:
    if mask.sum() < MIN_PIXELS:
        return NONE
    features = np.array(shape_features(mask))

    def distance(name: str) -> float:
        return float(np.linalg.norm(features - np.array(SHAPE_PROTOTYPES[name])))

    return min(SHAPES, key=distance)


def classify(img: np.ndarray) -> tuple[str, str]:
    """(colour, shape) of the object in ``img``; "none" for what cannot be told."""
    mask, rgb = _object(img)
    if rgb is None:
        return NONE, NONE
    return colour_of(rgb), shape_of(mask)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    """PSNR in dB of two uint8-scale images, optionally only over the pixels ``where`` is True."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if where is not None:
        diff = diff[np.asarray(where, dtype=bool)]
    mse = float(np.mean(diff**2)) if diff.size else 0.0
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)
