"""Tiled VAE encode/decode with linear-ramp blending, for any backend.

Above ``TilingPolicy.threshold_px`` image pixels, the image (encode) or latent (decode) is cut
into overlapping tiles of ``tile_px`` image pixels (``tile_px / f`` latents), each tile is run
through the backend's own untiled function, and the results are blended: every tile's weight
ramps linearly from ~0 to 1 across ``overlap_px`` on each side that borders another tile, and
the output is the weighted sum divided by the summed weights. Peak memory then depends on the
tile, not the image (SD's mid-block attention over a 2048^2 image would need ~16 GB otherwise).

Tiles see only their own context (the VAE's GroupNorm statistics and mid-block attention are
per tile), so a tiled result differs slightly from an untiled one; the ramps hide the seams.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Fn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TilingPolicy:
    """When and how to tile, in image pixels (latent sizes follow from the scale factor)."""

    threshold_px: int = 1024 * 1024  # tile when H*W (image pixels) exceeds this
    tile_px: int = 512
    overlap_px: int = 128

    def wants_tiles(self, height_px: int, width_px: int) -> bool:
        return height_px * width_px > self.threshold_px


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with >= ``overlap`` overlap.

    Starts are multiples of ``align`` except that the last tile ends exactly at ``length``
    (so ``length - tile`` must be a multiple of ``align`` too, as it is for VAE sizes).
    """
    if length <= tile:
        return [0]
    stride = max(align, (tile - overlap) // align * align)
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def ramp_weights(length: int, starts: list[int], tile: int, ramp: int) -> list[torch.Tensor]:
    """1-D blend weights per tile: linear ramps (never 0) on sides that border another tile."""
    weights = []
    ramp = max(1, min(ramp, tile // 2))
    edge = (torch.arange(ramp, dtype=torch.float32) + 0.5) / ramp
    for s in starts:
        w = torch.ones(tile)
        if s > 0:
            w[:ramp] = edge
        if s + tile < length:
            w[-ramp:] = torch.minimum(w[-ramp:], edge.flip(0))
        weights.append(w)
    return weights


def _run_tiled(fn: Fn, x: torch.Tensor, in_tile: int, in_overlap: int, ratio: float, align: int):
    """Apply ``fn`` tile by tile over the last two dims of ``x``; output size = input x ratio."""
    h, w = x.shape[-2:]
    tile_h, tile_w = min(in_tile, h), min(in_tile, w)
    rows = tile_starts(h, tile_h, in_overlap, align)
    cols = tile_starts(w, tile_w, in_overlap, align)
    out_th, out_tw = round(tile_h * ratio), round(tile_w * ratio)
    out_h, out_w = round(h * ratio), round(w * ratio)
    ramp = round(in_overlap * ratio)
    wr = ramp_weights(out_h, [round(r * ratio) for r in rows], out_th, ramp)
    wc = ramp_weights(out_w, [round(c * ratio) for c in cols], out_tw, ramp)
    out = total = None
    for r, w_r in zip(rows, wr):
        for c, w_c in zip(cols, wc):
            y = fn(x[..., r : r + tile_h, c : c + tile_w])
            if out is None:
                out = y.new_zeros((*y.shape[:-2], out_h, out_w))
                total = y.new_zeros((out_h, out_w))
            weight = (w_r[:, None] * w_c[None, :]).to(y.device, y.dtype)
            orow, ocol = round(r * ratio), round(c * ratio)
            out[..., orow : orow + out_th, ocol : ocol + out_tw] += y * weight
            total[orow : orow + out_th, ocol : ocol + out_tw] += weight
    return out / total


def tiled_encode(encode: Fn, image: torch.Tensor, scale_factor: int, policy: TilingPolicy):
    """Encode ``image`` (B, 3, H, W) tile by tile; H and W must be multiples of scale_factor."""
    f = scale_factor
    tile = max(f, policy.tile_px // f * f)
    return _run_tiled(encode, image, tile, policy.overlap_px, 1.0 / f, align=f)


def tiled_decode(decode: Fn, latent: torch.Tensor, scale_factor: int, policy: TilingPolicy):
    """Decode ``latent`` (B, C, h, w) tile by tile into (B, 3, h*f, w*f)."""
    f = scale_factor
    tile = max(1, policy.tile_px // f)
    return _run_tiled(decode, latent, tile, max(1, policy.overlap_px // f), float(f), align=1)


def maybe_tiled_encode(encode: Fn, image: torch.Tensor, scale_factor: int, policy: TilingPolicy):
    if policy.wants_tiles(*image.shape[-2:]):
        return tiled_encode(encode, image, scale_factor, policy)
    return encode(image)


def maybe_tiled_decode(decode: Fn, latent: torch.Tensor, scale_factor: int, policy: TilingPolicy):
    h, w = latent.shape[-2:]
    if policy.wants_tiles(h * scale_factor, w * scale_factor):
        return tiled_decode(decode, latent, scale_factor, policy)
    return decode(latent)
