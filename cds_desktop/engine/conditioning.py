"""What one UNet call needs besides the latents, and what its output means.

* **Prompt conditioning as one tensor.** A prompt's embedding is a ``(1, L, D)`` tensor for
  SD-1.x/2.x. For SDXL it is ``(1, L + 1, D)``: the extra last row carries the pooled text
  embedding (first ``P`` entries) and the VAE's down-sampling factor (entry ``P``), so the
  objective can batch, cache and expand prompts the same way for every family;
  :func:`unet_inputs` splits it again and builds SDXL's ``added_cond_kwargs`` (``text_embeds``
  and ``time_ids``) for every UNet call.
* **Everything in epsilon.** CDS/DDS are defined on the noise prediction; :func:`to_epsilon`
  converts a v- or x0-predicting UNet's output with the step's cumulative alpha.
"""

from __future__ import annotations

import torch

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
#: addition_embed_type values the engine can condition (None: SD-1.x/2.x; text_time: SDXL)
ADDITION_EMBED_TYPES = (None, "text_time")
SDXL_TIME_IDS = 6  # original size (h, w), crop top-left (y, x), target size (h, w)


def uses_added_conditioning(unet) -> bool:
    return getattr(unet.config, "addition_embed_type", None) == "text_time"


def pooled_width(unet) -> int:
    """Width of the pooled text embedding an SDXL UNet expects."""
    cfg = unet.config
    return int(cfg.projection_class_embeddings_input_dim) - SDXL_TIME_IDS * int(
        cfg.addition_time_embed_dim
    )


def pack(hidden: torch.Tensor, pooled: torch.Tensor, vae_factor: int) -> torch.Tensor:
    """(B, L, D) hidden states + (B, P) pooled embedding -> (B, L + 1, D) (see module doc)."""
    b, _, d = hidden.shape
    p = pooled.shape[-1]
    if p + 1 > d:
        raise ValueError(f"pooled width {p} does not fit a packed row of width {d}")
    extra = hidden.new_zeros(b, 1, d)
    extra[:, 0, :p] = pooled
    extra[:, 0, p] = float(vae_factor)
    return torch.cat([hidden, extra], dim=1)


def unet_inputs(unet, emb: torch.Tensor, latents: torch.Tensor):
    """Return ``(encoder_hidden_states, added_cond_kwargs or None)`` for one UNet call."""
    if not uses_added_conditioning(unet):
        return emb, None
    p = pooled_width(unet)
    hidden, extra = emb[:, :-1], emb[:, -1]
    factor = extra[:, p : p + 1].float()
    h, w = latents.shape[-2:]
    size = torch.cat([factor * h, factor * w], dim=1)  # pixel (height, width) of the region
    time_ids = torch.cat([size, torch.zeros_like(size), size], dim=1)
    return hidden, {"text_embeds": extra[:, :p], "time_ids": time_ids.to(emb.dtype)}


def to_epsilon(
    out: torch.Tensor, z_t: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str
) -> torch.Tensor:
    """The UNet output ``out`` at noisy latent ``z_t`` as a noise prediction.

    With z_t = sqrt(a) z0 + sqrt(1 - a) eps and v = sqrt(a) eps - sqrt(1 - a) z0:
    eps = sqrt(a) v + sqrt(1 - a) z_t;  from an x0 prediction: eps = (z_t - sqrt(a) x0) / sqrt(1 - a).
    """
    if prediction_type == "epsilon":
        return out
    a = alpha_bar.to(out.dtype)
    if prediction_type == "v_prediction":
        return a.sqrt() * out + (1 - a).sqrt() * z_t
    if prediction_type == "sample":
        return (z_t - a.sqrt() * out) / (1 - a).sqrt()
    raise ValueError(f"prediction_type={prediction_type!r}: expected one of {PREDICTION_TYPES}")
