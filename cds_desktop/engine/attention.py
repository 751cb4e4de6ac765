"""Capture the outputs of the UNet's up-block self-attention (``attn1``) layers.

CDS compares these features between the target and the source branch (PatchNCE). The
capturing processor computes attention with PyTorch's fused SDPA (diffusers'
``AttnProcessor2_0``) and keeps the layer output (after ``to_out``) for a chosen slice of the
batch, so the same UNet call can carry samples whose features are not needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from diffusers.models.attention_processor import AttnProcessor2_0


def is_up_self_attention(name: str) -> bool:
    """True for processor names like ``up_blocks.1.attentions.0.transformer_blocks.0.attn1.processor``."""
    return name.startswith("up_blocks.") and name.endswith("attn1.processor")


class FeatureStore:
    """Collects per-layer features for one UNet call; ``take()`` hands them over and clears."""

    def __init__(self) -> None:
        self.rows: slice | None = None
        self._features: list[torch.Tensor] = []

    def select(self, rows: slice | None) -> None:
        """Capture batch rows ``rows`` during the next UNet call (None = capture nothing)."""
        self.rows = rows
        self._features = []

    def add(self, hidden_states: torch.Tensor) -> None:
        if self.rows is not None:
            self._features.append(hidden_states[self.rows])

    def take(self) -> list[torch.Tensor]:
        features, self._features, self.rows = self._features, [], None
        return features


class CapturingAttnProcessor(AttnProcessor2_0):
    """SDPA attention that also hands its output to a FeatureStore."""

    def __init__(self, store: FeatureStore) -> None:
        super().__init__()
        self.store = store

    def __call__(
        self,
        attn,
        hidden_states,
        encoder_hidden_states=None,
        attention_mask=None,
        temb=None,
        *args,
        **kwargs,
    ):
        out = super().__call__(
            attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs
        )
        self.store.add(out)
        return out


@contextmanager
def capture_up_self_attention(unet, store: FeatureStore) -> Iterator[int]:
    """Install capturing processors on every up-block ``attn1``; restore the old ones on exit.

    Yields the number of captured layers. Raises ValueError if the UNet has none (CDS needs them).
    """
    saved = dict(unet.attn_processors)
    names = [n for n in saved if is_up_self_attention(n)]
    if not names:
        raise ValueError("this UNet has no self-attention (attn1) in its up blocks; CDS needs them")
    processor = CapturingAttnProcessor(store)
    unet.set_attn_processor({n: (processor if n in names else p) for n, p in saved.items()})
    try:
        yield len(names)
    finally:
        unet.set_attn_processor(saved)


@contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Turn off ``requires_grad`` on all parameters; restore each flag on exit."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
