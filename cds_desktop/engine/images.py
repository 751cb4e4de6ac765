"""Images in and out of the engine: any size, optional mask, exact composite.

Flow: ``plan_region`` picks the area to edit (mask bounding box + margin, or the whole image)
and the working size (long side = working_size, sides snapped to the model's multiple);
``region_tensor`` makes the model input; ``composite`` puts the edited region back with a
feathered mask. Pixels where the mask is 0, and the whole alpha channel, come back
bit-identical to the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageFilter

from .errors import EditError


@dataclass(frozen=True)
class Region:
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the original image
    work_size: tuple[int, int]  # (width, height) given to the model

    @property
    def crop_size(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.box
        return x1 - x0, y1 - y0


def to_rgba(image) -> np.ndarray:
    """PIL image or (H, W[, 1|3|4]) uint8 array -> (H, W, 4) uint8 (a new array)."""
    if isinstance(image, Image.Image):
        return np.array(image.convert("RGBA"))
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise EditError(f"image dtype {arr.dtype}: expected 8-bit (uint8) pixels")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise EditError(f"image shape {arr.shape}: expected (H, W), (H, W, 3) or (H, W, 4)")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise EditError(f"image shape {arr.shape}: the image is empty")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.shape[2] == 3:
        arr = np.concatenate([arr, np.full(arr.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return np.array(arr, copy=True)


def to_mask(mask, shape: tuple[int, int]) -> np.ndarray:
    """PIL image / array -> float32 (H, W) in [0, 1]; 1 = edit. Must match ``shape`` (H, W)."""
    if isinstance(mask, Image.Image):
        mask = np.array(mask.convert("RGBA" if mask.mode in ("RGBA", "LA", "PA") else "L"))
    arr = np.asarray(mask)
    if arr.ndim == 3:
        rgb = arr[..., :3].astype(np.float32).mean(axis=2) if arr.shape[2] >= 3 else arr[..., 0]
        if arr.shape[2] == 4:
            rgb = rgb * (arr[..., 3].astype(np.float32) / 255.0)
        arr = rgb if arr.dtype != np.uint8 else rgb / 255.0
    elif arr.dtype == np.uint8:
        arr = arr / 255.0
    elif arr.dtype == bool:
        arr = arr.astype(np.float32)
    arr = np.asarray(arr, dtype=np.float32)
    if arr.shape[:2] != tuple(shape):
        raise EditError(
            f"mask size {arr.shape[1]}x{arr.shape[0]} does not match the image size "
            f"{shape[1]}x{shape[0]}"
        )
    if not np.isfinite(arr).all():
        raise EditError("mask contains NaN/Inf values")
    return np.clip(arr, 0.0, 1.0)


def snap(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def plan_region(
    image_hw: tuple[int, int],
    mask: np.ndarray | None,
    working_size: int,
    multiple: int,
    margin: float,
    min_cells: int = 2,
) -> Region:
    """The box to edit and the model-side size for it.

    The box is the mask's bounding box plus ``margin`` (a fraction of its long side), or the
    whole image. Each side of the working size is a multiple of ``multiple`` and at least
    ``min_cells * multiple``: the UNet's coarsest feature map is ``work / multiple`` cells
    across, and PatchNCE pools it with patches of up to ``min_cells`` cells. A box too thin
    for that (a thin mask, a mask along the image edge) is widened across its short side,
    staying inside the image; where the image itself is too thin, the region is stretched to
    the minimum (the composite scales the result back to the box).
    """
    h, w = image_hw
    if h < 1 or w < 1:
        raise EditError(f"image size {w}x{h}: the image is empty")
    if mask is None:
        box = (0, 0, w, h)
    else:
        ys, xs = np.nonzero(mask > 0)
        if len(xs) == 0:
            raise EditError("the mask is empty: paint the area to edit (or pass no mask)")
        x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
        pad = int(round(margin * max(x1 - x0, y1 - y0)))
        box = (max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad))
    min_side = max(1, int(min_cells)) * multiple
    working_size = max(int(working_size), min_side)
    # at the scale that maps the long side to working_size, the short side must give min_side
    need = int(np.ceil(max(box[2] - box[0], box[3] - box[1]) * min_side / working_size))
    x0, x1 = _widen(box[0], box[2], need, w)
    y0, y1 = _widen(box[1], box[3], need, h)
    bw, bh = x1 - x0, y1 - y0
    scale = working_size / max(bw, bh)
    work = tuple(max(min_side, snap(side * scale, multiple)) for side in (bw, bh))
    return Region(box=(x0, y0, x1, y1), work_size=work)


def _widen(lo: int, hi: int, need: int, limit: int) -> tuple[int, int]:
    """Grow [lo, hi) to at least ``need`` (at most ``limit``) around its centre, inside
    [0, limit)."""
    size = min(max(need, hi - lo), limit)
    if size <= hi - lo:
        return lo, hi
    lo = max(0, min(lo - (size - (hi - lo)) // 2, limit - size))
    return lo, lo + size


def region_tensor(rgba: np.ndarray, region: Region) -> torch.Tensor:
    """The region's RGB, resized to the working size, as (1, 3, h, w) float32 in [-1, 1]."""
    x0, y0, x1, y1 = region.box
    crop = Image.fromarray(np.ascontiguousarray(rgba[y0:y1, x0:x1, :3]))
    if crop.size != region.work_size:
        crop = crop.resize(region.work_size, Image.Resampling.LANCZOS)
    arr = np.asarray(crop, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


def tensor_to_rgb(x: torch.Tensor) -> np.ndarray:
    """(1, 3, h, w) in [-1, 1] -> (h, w, 3) uint8."""
    arr = ((x[0].detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return arr.permute(1, 2, 0).cpu().numpy()


def feathered(mask: np.ndarray, radius: float) -> np.ndarray:
    """Soften the mask's edge inward only: 0 where the mask is 0, unchanged deep inside."""
    if radius <= 0:
        return mask
    blurred = Image.fromarray((mask * 255).round().astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(radius)
    )
    return mask * (np.asarray(blurred, dtype=np.float32) / 255.0)


def composite(
    rgba: np.ndarray,
    edited_rgb: np.ndarray,
    region: Region,
    mask: np.ndarray | None,
    feather: float,
) -> np.ndarray:
    """Put the edited region (at working size) back into a copy of ``rgba``.

    Without a mask the whole region is replaced. The alpha channel is always kept.
    """
    out = rgba.copy()
    x0, y0, x1, y1 = region.box
    edited = Image.fromarray(edited_rgb)
    if edited.size != region.crop_size:
        edited = edited.resize(region.crop_size, Image.Resampling.LANCZOS)
    new = np.asarray(edited, dtype=np.float32)
    if mask is None:
        out[y0:y1, x0:x1, :3] = new.round().astype(np.uint8)
        return out
    alpha = feathered(mask, feather)[y0:y1, x0:x1, None]
    old = rgba[y0:y1, x0:x1, :3].astype(np.float32)
    blended = np.clip(np.round(old * (1 - alpha) + new * alpha), 0, 255).astype(np.uint8)
    inside = alpha[..., 0] > 0
    out[y0:y1, x0:x1, :3][inside] = blended[inside]
    return out
