"""VAE backend running the diffusers AutoencoderKL in PyTorch."""

from __future__ import annotations

import torch

from .base import vae_scale_factor


class TorchVae:
    name = "torch"

    def __init__(self, vae, device: torch.device | str, dtype: torch.dtype = torch.float32) -> None:
        if vae.dtype != dtype:
            vae = vae.to(dtype=dtype)
        self.vae = vae.to(device=device).eval()
        self.vae.requires_grad_(False)
        self.device = torch.device(device)
        self.dtype = dtype
        self.scale_factor = vae_scale_factor(vae)
        self.scaling_factor = float(vae.config.scaling_factor)
        self.latent_channels = int(vae.config.latent_channels)

    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        x = image.to(device=self.device, dtype=self.dtype)
        mean = self.vae.encode(x).latent_dist.mean
        return mean.float() * self.scaling_factor

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        z = (latent / self.scaling_factor).to(device=self.device, dtype=self.dtype)
        return self.vae.decode(z).sample.float().clamp(-1, 1)
