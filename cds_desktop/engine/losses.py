"""The two terms of the CDS objective as small pure tensor functions.

* DDS (Hertz et al. 2023): the gradient direction  eps(z_t_trg, y_trg) - eps(z_t_src, y_src),
  both with classifier-free guidance.
* CUT / PatchNCE (Park et al. 2020, as used by CDS): for each self-attention feature map, each
  patch position of the target (query) should match the same position of the source (positive,
  detached) rather than any other sampled position (negatives).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: the logit given to a query's own position in the negative set (published PatchNCE)
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


def nce_loss(query: torch.Tensor, positive: torch.Tensor, tau: float) -> torch.Tensor:
    """PatchNCE over P sampled positions: (B, P, C) unit vectors -> (B,) mean cross-entropy.

    Logits for query i: [q_i.k_i, q_i.k_j for all j (with j = i set to -10)] / tau; label 0.
    """
    positive = positive.detach()
    l_pos = (query * positive).sum(-1, keepdim=True)  # (B, P, 1)
    l_neg = query @ positive.transpose(1, 2)  # (B, P, P)
    eye = torch.eye(l_neg.shape[-1], dtype=torch.bool, device=l_neg.device)
    l_neg = l_neg.masked_fill(eye, SELF_NEGATIVE_LOGIT)
    logits = torch.cat([l_pos, l_neg], dim=-1) / tau
    return -torch.log_softmax(logits, dim=-1)[..., 0].mean(-1)


def patch_nce(
    query: torch.Tensor,
    reference: torch.Tensor,
    patch_sizes: tuple[int, ...],
    n_patches: int,
    tau: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """PatchNCE between two (B, C, h, w) feature maps, summed over patch sizes -> (B,).

    For patch size p > 1 the maps are average-pooled with a p x p window first. At most
    ``n_patches`` positions are sampled (the same positions for query and reference).
    """
    total = query.new_zeros(query.shape[0])
    for p in patch_sizes:
        q, k = (F.avg_pool2d(query, p), F.avg_pool2d(reference, p)) if p > 1 else (query, reference)
        q = F.normalize(q, dim=1).flatten(2).transpose(1, 2)  # (B, positions, C)
        k = F.normalize(k, dim=1).flatten(2).transpose(1, 2)
        positions = q.shape[1]
        if positions == 0:
            continue
        if n_patches < positions:
            device = generator.device if generator is not None else q.device
            idx = torch.randperm(positions, generator=generator, device=device)[:n_patches]
            idx = idx.to(q.device)
            q, k = q[:, idx], k[:, idx]
        total = total + nce_loss(q, k, tau)
    return total
