"""Contrastive Denoising Score: one step as a checkable function, and the edit as a generator.

The objective's gradient with respect to the target latent, per step (paper notation):

    g = k * (eps_cfg(z_t_trg, y_trg) - eps_cfg(z_t_src, y_src))       # DDS
      + w_cut * d/dz_trg  sum_layers PatchNCE(F_trg, sg(F_src))          # CUT

with z_t = sqrt(a_t) z + sqrt(1 - a_t) eps for one shared (t, eps), k = 2000 w_dds / 4096 per
latent element (see EditSettings.dds_gain) and F the outputs of the UNet's up-block
self-attention layers. SGD: z_trg <- z_trg - lr * g.

Loop structure (vs the published code's 4-sample no-grad pass + 2-sample grad pass with
trainable attn1 weights): one no-grad pass over 3 samples [src-uncond, src-cond, trg-uncond]
(capturing F_src from src-cond) and one grad pass over trg-cond only (giving F_trg and
eps(z_t_trg, y_trg) at once), UNet weights frozen, SDPA attention. In DDS mode the 4 samples
share one no-grad pass.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from . import images
from .attention import FeatureStore, capture_up_self_attention, frozen
from .errors import EditCancelled, EditError, NumericalError
from .losses import dds_direction, feature_grid, guided, patch_nce
from .settings import EditSettings

CancelFlag = threading.Event | Callable[[], bool] | None


class CDSObjective:
    """One CDS (or DDS) step on a diffusers UNet2DConditionModel."""

    def __init__(self, unet, scheduler, settings: EditSettings) -> None:
        self.unet = unet
        self.settings = settings
        self.alphas_cumprod = scheduler.alphas_cumprod.to(dtype=torch.float32)
        self.store = FeatureStore()
        self._emb_cache: dict = {}

    @contextmanager
    def session(self) -> Iterator[CDSObjective]:
        """Install the capture processors and freeze the UNet for a run of steps.

        Every processor and ``requires_grad`` flag is restored on exit, also after an exception.
        """
        with ExitStack() as stack:
            stack.enter_context(frozen(self.unet))
            if self.settings.effective_w_cut > 0:
                stack.enter_context(capture_up_self_attention(self.unet, self.store))
            yield self

    def gradient(
        self,
        z_src: torch.Tensor,
        z_trg: torch.Tensor,
        timestep: int | torch.Tensor,
        noise: torch.Tensor,
        uncond: torch.Tensor,
        cond_src: torch.Tensor,
        cond_trg: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """d(objective)/d(z_trg) for one explicit (t, eps). Latents (B, C, h, w); embeddings
        (B or 1, L, D). Rows of a batch are independent edits. The result has z_trg's dtype
        (keep the latents fp32 when the UNet runs in fp16/bf16)."""
        with self.session():
            return self.step_gradient(
                z_src, z_trg, timestep, noise, uncond, cond_src, cond_trg, generator
            )

    # The hot path: called inside session() by run_edit.
    def step_gradient(
        self, z_src, z_trg, timestep, noise, uncond, cond_src, cond_trg, generator=None
    ):
        s = self.settings
        b = z_trg.shape[0]
        t = torch.as_tensor(timestep, device=z_trg.device)
        a_t = self._alphas(z_trg.device)[t].to(z_trg.dtype)
        scales = (a_t.sqrt(), (1 - a_t).sqrt())  # z_t = sqrt(a) z + sqrt(1 - a) eps, computed once
        w_cut = s.effective_w_cut
        with torch.no_grad():
            z_t_src = scales[0] * z_src + scales[1] * noise
            z_t_trg = scales[0] * z_trg + scales[1] * noise
            if w_cut == 0:  # DDS: all four samples in one no-grad pass
                emb = self._embeddings(b, uncond, cond_src, uncond, cond_trg)
                eps = self._eps(torch.cat([z_t_src, z_t_src, z_t_trg, z_t_trg]), t, emb)
                e_su, e_sc, e_tu, e_tc = eps.chunk(4)
            else:  # CDS: 3 samples, capturing the source-cond features (rows b..2b)
                emb = self._embeddings(b, uncond, cond_src, uncond)
                self.store.select(slice(b, 2 * b))
                eps = self._eps(torch.cat([z_t_src, z_t_src, z_t_trg]), t, emb)
                reference = self.store.take()
                e_su, e_sc, e_tu = eps.chunk(3)
        grad_cut = None
        if w_cut > 0:
            e_tc, grad_cut = self._cut_pass(
                z_trg, noise, scales, t, self._embeddings(b, cond_trg), reference, generator
            )
        direction = dds_direction(
            guided(e_tu, e_tc, s.guidance_scale), guided(e_su, e_sc, s.guidance_scale)
        )
        grad = s.dds_gain(*z_trg.shape[-2:]) * direction
        if grad_cut is not None:
            grad = grad + w_cut * grad_cut
        return grad

    def _alphas(self, device: torch.device) -> torch.Tensor:
        if self.alphas_cumprod.device != device:  # once per device, not per step
            self.alphas_cumprod = self.alphas_cumprod.to(device)
        return self.alphas_cumprod

    def _embeddings(self, batch: int, *parts: torch.Tensor) -> torch.Tensor:
        """Concatenate (1 or B, L, D) embeddings into one batch, cached across steps."""
        key = (batch,) + tuple(id(p) for p in parts)
        if key not in self._emb_cache:
            if len(self._emb_cache) >= 4:
                self._emb_cache.clear()
            # the parts are kept alongside, so their ids cannot be reused while cached
            self._emb_cache[key] = (parts, torch.cat([p.expand(batch, -1, -1) for p in parts]))
        return self._emb_cache[key][1]

    def _eps(self, latents: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        out = self.unet(latents.to(self.unet.dtype), t, encoder_hidden_states=emb).sample
        return out.to(latents.dtype)

    def _cut_pass(self, z_trg, noise, scales, t, cond_trg, reference, generator):
        """Grad pass over the target-cond sample: eps(z_t_trg, y_trg) and w.r.t. z_trg the
        gradient of sum over layers of PatchNCE(F_trg, sg(F_src))."""
        s = self.settings
        z = z_trg.detach().requires_grad_(True)
        hw = tuple(z_trg.shape[-2:])
        with torch.enable_grad():
            z_t = scales[0] * z + scales[1] * noise
            self.store.select(slice(None))
            eps = self._eps(z_t, t, cond_trg)
            query = self.store.take()
            loss = sum(
                patch_nce(
                    feature_grid(q.to(z.dtype), hw),
                    feature_grid(k.to(z.dtype), hw),
                    s.patch_sizes,
                    s.n_patches,
                    s.tau,
                    generator,
                ).sum()
                for q, k in zip(query, reference, strict=True)
            )
            (grad,) = torch.autograd.grad(loss, z)
        return eps.detach(), grad


# ----------------------------------------------------------------------------- the edit
@dataclass
class Progress:
    """Yielded once per step. ``preview()`` is cheap (linear latent->RGB, computed on demand);
    ``decoded`` is a full VAE decode of the working region every ``preview_every`` steps."""

    step: int
    total: int
    box: tuple[int, int, int, int]
    elapsed: float
    decoded: np.ndarray | None = None
    _latent: torch.Tensor | None = field(default=None, repr=False)
    _projection: torch.Tensor | None = field(default=None, repr=False)

    def preview(self) -> np.ndarray | None:
        """(h, w, 3) uint8 RGB of the working region at latent resolution."""
        if self.decoded is not None:
            return self.decoded
        if self._latent is None or self._projection is None:
            return None
        z = self._latent[0].float().cpu()
        x = torch.cat([z, torch.ones_like(z[:1])]).permute(1, 2, 0) @ self._projection
        return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


@dataclass
class EditResult:
    image: np.ndarray  # (H, W, 4) uint8: the whole image with the edit composited
    region: np.ndarray  # (h, w, 3) uint8: the decoded working region
    box: tuple[int, int, int, int]
    settings: EditSettings
    source_prompt: str
    target_prompt: str
    model_label: str
    elapsed: float
    steps: int


def _cancelled(cancel: CancelFlag) -> bool:
    if cancel is None:
        return False
    return cancel.is_set() if isinstance(cancel, threading.Event) else bool(cancel())


def check_prompts(source: str, target: str) -> None:
    for name, text in (("source prompt", source), ("target prompt", target)):
        if not isinstance(text, str) or not text.strip():
            raise EditError(f"the {name} is empty: describe the image ({name.split()[0]})")


def run_edit(
    model,
    image,
    source_prompt: str,
    target_prompt: str,
    mask=None,
    settings: EditSettings | None = None,
    cancel: CancelFlag = None,
) -> Generator[Progress, None, EditResult]:
    """Edit ``image`` from ``source_prompt`` toward ``target_prompt``; yields Progress per step.

    ``model`` is a LoadedModel. Returns (StopIteration.value) an EditResult. Raises
    EditCancelled within one step of ``cancel`` being set, EditError for bad input.
    """
    started = time.perf_counter()
    settings = (settings or EditSettings()).resolved(
        w_cut=model.recommended.get("w_cut"), working_size=model.native_size
    )
    check_prompts(source_prompt, target_prompt)
    rgba = images.to_rgba(image)
    mask_arr = None if mask is None else images.to_mask(mask, rgba.shape[:2])
    region = images.plan_region(
        rgba.shape[:2],
        mask_arr,
        settings.working_size,
        model.size_multiple,
        settings.crop_margin,
        min_cells=max(settings.patch_sizes) if settings.effective_w_cut > 0 else 1,
    )
    device = model.device
    generator = torch.Generator(device=device).manual_seed(settings.seed)

    z_src = model.vae.encode(images.region_tensor(rgba, region).to(device)).float()
    z_trg = z_src.clone()
    uncond, cond_src, cond_trg = (
        model.encode_prompt(p) for p in ("", source_prompt, target_prompt)
    )
    objective = CDSObjective(model.unet, model.scheduler, settings)
    lo, hi = settings.t_range
    projection = model.rgb_projection()
    with objective.session():
        for step in range(1, settings.steps + 1):
            if _cancelled(cancel):
                raise EditCancelled(f"cancelled at step {step - 1}/{settings.steps}")
            t = torch.randint(lo, hi + 1, (), generator=generator, device=device)
            noise = torch.randn(z_src.shape, generator=generator, device=device)
            grad = objective.step_gradient(
                z_src, z_trg, t, noise, uncond, cond_src, cond_trg, generator
            )
            z_trg = z_trg - settings.lr * grad
            decoded = None
            if (
                settings.preview_every
                and step % settings.preview_every == 0
                and step < settings.steps
            ):
                _check_finite(z_trg, step)
                decoded = images.tensor_to_rgb(model.vae.decode(z_trg))
            yield Progress(
                step,
                settings.steps,
                region.box,
                time.perf_counter() - started,
                decoded,
                z_trg,
                projection,
            )
    _check_finite(z_trg, settings.steps)
    edited = images.tensor_to_rgb(model.vae.decode(z_trg))
    out = images.composite(rgba, edited, region, mask_arr, settings.feather)
    return EditResult(
        image=out,
        region=edited,
        box=region.box,
        settings=settings,
        source_prompt=source_prompt,
        target_prompt=target_prompt,
        model_label=model.label,
        elapsed=time.perf_counter() - started,
        steps=settings.steps,
    )


def _check_finite(z: torch.Tensor, step: int) -> None:
    if not bool(torch.isfinite(z).all()):
        raise NumericalError(
            f"the optimisation diverged (NaN/Inf in the latent at step {step}); "
            "try a lower lr, w_cut or guidance, or fp32 (--dtype fp32)"
        )


def edit(
    model, image, source_prompt: str, target_prompt: str, mask=None, settings=None, cancel=None
) -> EditResult:
    """Run :func:`run_edit` to the end and return its EditResult (no progress)."""
    gen = run_edit(model, image, source_prompt, target_prompt, mask, settings, cancel)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
