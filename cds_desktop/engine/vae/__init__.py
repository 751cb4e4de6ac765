"""VAE backends behind one protocol (see base.py): torch, and onnxruntime (onnx_vae.py).

The engine asks :func:`create_backend` for a backend and never branches on which one it got.
onnxruntime is imported only when the ONNX backend is chosen.
"""

from __future__ import annotations

import logging

import torch

from .base import VaeBackend, vae_scale_factor
from .tiling import TilingPolicy
from .torch_vae import TorchVae

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")

# What "auto" picks per device type, from benchmarks/vae.py (docs/performance.md, "VAE
# backends"). Device types not listed get torch.
AUTO_CHOICE = {"cpu": "onnx", "cuda": "torch"}


def auto_kind(device: torch.device | str) -> str:
    """The backend "auto" means on ``device`` (measured, see AUTO_CHOICE)."""
    return AUTO_CHOICE.get(torch.device(device).type, "torch")


def create_backend(vae, kind: str, device, dtype, identity: str = "") -> VaeBackend:
    """Build the VAE backend ``kind`` (auto | torch | onnx) for a diffusers AutoencoderKL.

    ``identity`` names the source model (recorded with the ONNX export; the cache key itself
    hashes the VAE's config and weights). If the ONNX backend cannot be built (onnxruntime not
    installed, export failed) the torch backend is used instead, with one logged warning.
    """
    if kind not in BACKENDS:
        from ..errors import EditError

        raise EditError(f"vae_backend={kind!r}: expected one of {', '.join(BACKENDS)}")
    chosen = auto_kind(device) if kind == "auto" else kind
    if chosen == "onnx":
        onnx_vae = _try_onnx(vae, device, identity)
        if onnx_vae is not None:
            return onnx_vae
    return TorchVae(vae, device, dtype)


def _try_onnx(vae, device, identity: str) -> VaeBackend | None:
    from .onnx_vae import OnnxVae, unavailable_reason  # imports onnxruntime only when called

    why_not = unavailable_reason(device)
    if why_not:
        log.warning("%s; using the torch VAE", why_not)
        return None
    try:
        return OnnxVae.from_vae(vae, device, source=identity)
    except Exception as exc:  # export/session errors: fall back rather than fail the load
        log.warning("the ONNX VAE is unavailable (%s); using the torch VAE", exc)
        return None


__all__ = [
    "BACKENDS",
    "AUTO_CHOICE",
    "TilingPolicy",
    "TorchVae",
    "VaeBackend",
    "auto_kind",
    "create_backend",
    "vae_scale_factor",
]
