"""The two terms of the CDS objective as small pure tensor functions.

* DDS (Hertz et al. 2023): the gradient direction  eps(z_t_trg, y_trg) - eps(z_t_src, y_src),
  both with classifier-free guidance.
* PatchNCE as the published CDS code computes it (Nam et al. 2024, ``CutLoss.PatchNCELoss
  (ref_noise, trg_noise)``): the **source** patch is the anchor, the **target** patches are the
  positive and the negatives; see :func:`patch_nce` for the formula.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: the logit given to an anchor's own position in the negative set (published PatchNCE)
SELF_NEGATIVE_LOGIT = -10.0


def guided(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: eps_u + s * (eps_c - eps_u)."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


def dds_direction(eps_trg: torch.Tensor, eps_src: torch.Tensor) -> torch.Tensor:
    """The DDS gradient direction (before scaling)."""
    return eps_trg - eps_src


def feature_grid(tokens: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
    """(B, N, C) attention tokens -> (B, C, h, w), with h/w the latent's aspect ratio."""
    b, n, c = tokens.shape
    lh, lw = latent_hw
    factor = math.sqrt(lh * lw / n)
    h, w = round(lh / factor), round(lw / factor)
    if h * w != n:
        raise ValueError(f"cannot lay out {n} tokens on a grid with the latent's aspect {lh}x{lw}")
    return tokens.transpose(1, 2).reshape(b, c, h, w)


def info_nce(source: torch.Tensor, target: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE with the source as anchor: (B|1, P, C) source, (B, P, C) target unit vectors
    -> (B,) mean over the P positions.

    logits_i = [<S_i, T_i>, <S_i, T_1>, ..., <S_i, T_P> (j = i entry set to -10)] / tau, class 0.
    The source is detached; the gradient reaches every T_j (positive and negatives).
    """
    source = source.detach()
    l_pos = (source * target).sum(-1, keepdim=True)  # (B, P, 1)
    l_neg = source @ target.transpose(1, 2)  # (B, P, P): row i = anchor S_i against T_j
    eye = torch.eye(l_neg.shape[-1], dtype=torch.bool, device=l_neg.device)
    l_neg = l_neg.masked_fill(eye, SELF_NEGATIVE_LOGIT)
    logits = torch.cat([l_pos, l_neg], dim=-1) / tau
    return -torch.log_softmax(logits, dim=-1)[..., 0].mean(-1)


def sample_positions(
    positions: int, n_patches: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor | None:
    """min(n_patches, positions) distinct positions, drawn on the CPU (``generator`` must be a
    CPU generator) and moved to ``device``; None when every position is used (no draw)."""
    if n_patches >= positions:
        return None
    idx = torch.randperm(positions, generator=generator)[:n_patches]
    return idx.to(device)


def draw_positions(
    hw: tuple[int, int],
    patch_sizes: tuple[int, ...],
    n_patches: int,
    generator: torch.Generator | None,
    device: torch.device,
) -> list[torch.Tensor | None]:
    """The sampled positions of one (h, w) feature map for each patch size (see patch_nce)."""
    h, w = hw
    return [
        sample_positions((h // p) * (w // p), n_patches, generator, device) for p in patch_sizes
    ]


def patch_nce(
    target: torch.Tensor,
    source: torch.Tensor,
    patch_sizes: tuple[int, ...],
    n_patches: int,
    tau: float,
    generator: torch.Generator | None = None,
    positions: list[torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """PatchNCE of the published CDS code between (B, C, h, w) target features and (B or 1,
    C, h, w) source features, summed over patch sizes -> (B,)::

        for each patch size p (p x p average pool when p > 1), features L2-normalised over C,
        the same P = min(n_patches, positions) sampled positions for S (source) and T (target):
            logits_i = [ <S_i, T_i>, <S_i, T_1>, ..., <S_i, T_P> with the j = i entry -10 ] / tau
            loss_p = mean_i CrossEntropy(logits_i, class 0)
        loss = sum_p loss_p

    The source (reference) is detached, so the gradient reaches the target through T only, and
    through every T_j: as the positive of anchor j and as a negative of every other anchor.
    ``positions`` (one index tensor or None per patch size, see draw_positions) are the same
    for every row of the batch; when not given they are drawn with ``generator`` on the CPU
    (one randperm per patch size, only when n_patches < positions).
    """
    if positions is None:
        positions = draw_positions(
            target.shape[-2:], patch_sizes, n_patches, generator, target.device
        )
    total = target.new_zeros(target.shape[0])
    for p, idx in zip(patch_sizes, positions, strict=True):
        t, s = (F.avg_pool2d(target, p), F.avg_pool2d(source, p)) if p > 1 else (target, source)
        t = F.normalize(t, dim=1).flatten(2).transpose(1, 2)  # (B, positions, C)
        s = F.normalize(s, dim=1).flatten(2).transpose(1, 2)
        if t.shape[1] == 0:
            continue
        if idx is not None:
            t, s = t[:, idx], s[:, idx]
        total = total + info_nce(s, t, tau)
    return total
