"""VAE backends behind one protocol (see base.py): torch, and onnxruntime (onnx_vae.py)."""

from __future__ import annotations

import logging

from .base import VaeBackend, vae_scale_factor
from .torch_vae import TorchVae

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")


def create_backend(vae, kind: str, device, dtype, identity: str = "") -> VaeBackend:
    """Build the VAE backend ``kind`` (auto | torch | onnx) for a diffusers AutoencoderKL.

    ``identity`` names the source model (used by the ONNX export cache).
    """
    if kind not in BACKENDS:
        from ..errors import EditError

        raise EditError(f"vae_backend={kind!r}: expected one of {', '.join(BACKENDS)}")
    return TorchVae(vae, device, dtype)


__all__ = ["BACKENDS", "TorchVae", "VaeBackend", "create_backend", "vae_scale_factor"]
