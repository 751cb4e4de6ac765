"""VAE backend running the diffusers AutoencoderKL in PyTorch."""

from __future__ import annotations

import torch

from .base import vae_scale_factor
from .tiling import TilingPolicy, maybe_tiled_decode, maybe_tiled_encode


class TorchVae:
    name = "torch"

    def __init__(
        self,
        vae,
        device: torch.device | str,
        dtype: torch.dtype = torch.float32,
        tiling: TilingPolicy | None = None,
    ) -> None:
        if vae.dtype != dtype:
            vae = vae.to(dtype=dtype)
        self.vae = vae.to(device=device).eval()
        self.vae.requires_grad_(False)
        self.device = torch.device(device)
        self.dtype = dtype
        self.scale_factor = vae_scale_factor(vae)
        self.scaling_factor = float(vae.config.scaling_factor)
        self.latent_channels = int(vae.config.latent_channels)
        self.tiling = tiling or TilingPolicy()

    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        x = image.to(device=self.device, dtype=self.dtype)
        return maybe_tiled_encode(self._encode, x, self.scale_factor, self.tiling)

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        z = latent.to(device=self.device, dtype=torch.float32)
        return maybe_tiled_decode(self._decode, z, self.scale_factor, self.tiling)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.vae.encode(x).latent_dist.mean
        return mean.float() * self.scaling_factor

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        z = (z / self.scaling_factor).to(dtype=self.dtype)
        return self.vae.decode(z).sample.float().clamp(-1, 1)
