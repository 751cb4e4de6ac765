"""The VAE backend protocol: one convention for every implementation.

* ``encode(image)``: image ``(B, 3, H, W)`` float32 in [-1, 1] on the engine's device ->
  scaled latent ``(B, C, H/f, W/f)`` float32 = posterior **mean** x ``scaling_factor``.
* ``decode(latent)``: scaled latent -> image ``(B, 3, H, W)`` float32 in [-1, 1] (clamped).
* ``scale_factor`` f is the spatial downsampling (read from the model, never assumed).

CDS never differentiates through the VAE, so both run without autograd.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class VaeBackend(Protocol):
    name: str
    scale_factor: int
    scaling_factor: float
    latent_channels: int

    def encode(self, image: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latent: torch.Tensor) -> torch.Tensor: ...


def vae_scale_factor(vae) -> int:
    """Spatial downsampling of a diffusers AutoencoderKL, from its config."""
    return 2 ** (len(vae.config.block_out_channels) - 1)
