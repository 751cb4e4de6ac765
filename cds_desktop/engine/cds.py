"""Contrastive Denoising Score: one optimisation step as a checkable function (the edit that
drives it over the steps is engine/edit.py).

The objective's gradient with respect to the target latent, per step (paper notation):

    g = k * (eps_cfg(z_t_trg, y_trg) - eps_cfg(z_t_src, y_src))       # DDS
      + w_cut * d/dz_trg  sum_layers PatchNCE(F_trg, sg(F_src))          # CUT

with z_t = sqrt(a_t) z + sqrt(1 - a_t) eps for one shared (t, eps), k = 2000 w_dds / 4096 per
latent element (see EditSettings.dds_gain), F the outputs of the UNet's up-block
self-attention layers and PatchNCE the published CDS orientation (source anchor, see
losses.patch_nce). SGD: z_trg <- z_trg - lr * g.

Loop structure (vs the published code's 4-sample no-grad pass + 2-sample grad pass with
trainable attn1 weights): one no-grad pass over [src-uncond, src-cond, trg-uncond x K]
(capturing F_src from src-cond) and one grad pass over the K trg-conds only (giving F_trg and
eps(z_t_trg, y_trg) at once), UNet weights frozen, SDPA attention. In DDS mode all samples
share one no-grad pass.

Several target prompts for one image (``run_edits``) share the source branch: per step one t,
one noise and one set of patch positions for all K targets, the source rows computed once, the
K target latents as one batch (in chunks that fit a memory budget, see ``targets_per_chunk``).
Each target's result equals that target edited alone with the same seed (rows of a batch are
independent; only floating-point rounding of the batched kernels differs).

Random draws come from CPU generators seeded by ``seed`` and are moved to the device, so a
seeded edit draws the same t, noise and positions on every device.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext

import torch

from .attention import FeatureStore, capture_up_self_attention, frozen
from .conditioning import to_epsilon, unet_inputs
from .losses import dds_direction, draw_positions, feature_grid, guided, patch_nce
from .settings import EditSettings

#: the patch-position generator is seeded with seed + this, so t/noise draws do not depend on
#: whether (or how many) positions are drawn: DDS and CDS with one seed see the same t and noise
PATCH_SEED_OFFSET = 0x5EED
#: a chunk of targets may use this fraction of the device's free memory (see targets_per_chunk)
MEMORY_FRACTION = 0.5
#: head room on the measured autograd memory per target (transient activations)
MEMORY_HEADROOM = 1.25
FALLBACK_MEMORY_BUDGET = 4 << 30


class CDSObjective:
    """One CDS (or DDS) step on a diffusers UNet2DConditionModel."""

    def __init__(self, unet, scheduler, settings: EditSettings) -> None:
        self.unet = unet
        self.settings = settings
        self.alphas_cumprod = scheduler.alphas_cumprod.to(dtype=torch.float32)
        self.prediction_type = scheduler.config.prediction_type
        self.store = FeatureStore()
        self._emb_cache: dict = {}
        #: autograd memory one target row kept for the backward pass in the last measured step
        #: (bytes; ``step_gradient(..., measure=True)``), None before
        self.bytes_per_target: int | None = None

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
        chunk: int | None = None,
    ) -> torch.Tensor:
        """d(objective)/d(z_trg) for one explicit (t, eps). Latents (B, C, h, w); embeddings
        (B or 1, L, D). Rows of a batch are independent edits. ``z_src`` and ``noise`` may have
        one row shared by all B targets: the source branch is then computed once. The result
        has z_trg's dtype (keep the latents fp32 when the UNet runs in fp16/bf16).
        ``generator`` (a CPU generator) draws the patch positions; ``chunk`` caps the target
        rows per UNet call."""
        with self.session():
            return self.step_gradient(
                z_src, z_trg, timestep, noise, uncond, cond_src, cond_trg, generator, chunk
            )

    # The hot path: called inside session() by run_edits.
    def step_gradient(
        self,
        z_src,
        z_trg,
        timestep,
        noise,
        uncond,
        cond_src,
        cond_trg,
        generator=None,
        chunk=None,
        measure=False,
    ):
        """As :meth:`gradient`, inside :meth:`session`. ``measure``: record
        ``bytes_per_target`` from the first chunk's grad pass."""
        bs, bt = z_src.shape[0], z_trg.shape[0]
        shared = bs == 1
        if not shared and bs != bt:
            raise ValueError(f"z_src has {bs} rows: expected 1 (shared) or {bt} (one per target)")
        if noise.shape[0] not in (1, bs):
            raise ValueError(f"noise has {noise.shape[0]} rows: expected 1 or {bs}")
        chunk = bt if chunk is None else max(1, min(int(chunk), bt))
        t = torch.as_tensor(timestep, device=z_trg.device)
        a_t = self._alphas(z_trg.device)[t].to(z_trg.dtype)
        scales = (a_t.sqrt(), (1 - a_t).sqrt())  # z_t = sqrt(a) z + sqrt(1 - a) eps, computed once
        positions: dict[int, list] = {}  # one set of patch positions per layer, for every chunk
        source = None  # the shared source branch, computed with the first chunk
        grads = []
        for start in range(0, bt, chunk):
            rows = slice(start, min(start + chunk, bt))
            src_rows = (slice(0, 1) if source is None else None) if shared else rows
            grad, src = self._chunk_gradient(
                z_src,
                z_trg[rows],
                noise if noise.shape[0] == 1 else noise[rows],
                t,
                scales,
                uncond,
                cond_src,
                cond_trg,
                rows,
                src_rows,
                source,
                generator,
                positions,
                measure and start == 0,
            )
            if shared:
                source = src
            grads.append(grad)
        return grads[0] if len(grads) == 1 else torch.cat(grads)

    def _chunk_gradient(
        self,
        z_src,
        z_trg,
        noise,
        t,
        scales,
        uncond,
        cond_src,
        cond_trg,
        rows,
        src_rows,
        source,
        generator,
        positions,
        measure,
    ):
        """The gradient for the target rows ``z_trg`` (rows ``rows`` of the batch). The source
        rows ``src_rows`` ride along in the no-grad pass, or (``src_rows`` None) ``source`` =
        (eps_su, eps_sc, features) was computed with an earlier chunk of this step."""
        s = self.settings
        w_cut = s.effective_w_cut
        n = z_trg.shape[0]
        with torch.no_grad():
            z_t_trg = scales[0] * z_trg + scales[1] * noise
            latents, embs, m = [], [], 0
            if src_rows is not None:
                z_t_src = scales[0] * z_src[src_rows] + scales[1] * noise
                m = z_t_src.shape[0]
                latents += [z_t_src, z_t_src]
                embs += [(uncond, None, m), (cond_src, src_rows, m)]
            latents.append(z_t_trg)
            embs.append((uncond, None, n))
            if w_cut == 0:  # DDS: every sample in the one no-grad pass
                latents.append(z_t_trg)
                embs.append((cond_trg, rows, n))
            else:  # CDS: capture the source-cond features (rows m..2m)
                self.store.select(slice(m, 2 * m) if m else None)
            eps = self._eps(torch.cat(latents), t, self._embeddings(embs))
            if m:
                source = (eps[:m], eps[m : 2 * m], self.store.take() if w_cut > 0 else None)
            e_su, e_sc, reference = source
            e_tu = eps[2 * m : 2 * m + n]
            e_tc = eps[2 * m + n :] if w_cut == 0 else None
        grad_cut = None
        if w_cut > 0:
            e_tc, grad_cut = self._cut_pass(
                z_trg,
                noise,
                scales,
                t,
                self._embeddings([(cond_trg, rows, n)]),
                reference,
                generator,
                positions,
                measure,
            )
        direction = dds_direction(
            guided(e_tu, e_tc, s.guidance_scale), guided(e_su, e_sc, s.guidance_scale)
        )
        grad = s.dds_gain(*z_trg.shape[-2:]) * direction
        if grad_cut is not None:
            grad = grad + w_cut * grad_cut
        return grad, source

    def _alphas(self, device: torch.device) -> torch.Tensor:
        if self.alphas_cumprod.device != device:  # once per device, not per step
            self.alphas_cumprod = self.alphas_cumprod.to(device)
        return self.alphas_cumprod

    def _embeddings(self, parts: list) -> torch.Tensor:
        """One batch of embeddings from (tensor (1|B, L, D), rows or None, count) parts: a
        one-row tensor is repeated ``count`` times, a B-row tensor sliced. Cached across steps."""
        key = tuple((id(e), None if r is None else (r.start, r.stop), c) for e, r, c in parts)
        if key not in self._emb_cache:
            if len(self._emb_cache) >= 8:
                self._emb_cache.clear()
            pieces = [
                (e if r is None or e.shape[0] == 1 else e[r]).expand(c, -1, -1) for e, r, c in parts
            ]
            # the tensors are kept alongside, so their ids cannot be reused while cached
            self._emb_cache[key] = ([p[0] for p in parts], torch.cat(pieces))
        return self._emb_cache[key][1]

    def _eps(self, latents: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The one place that calls the UNet: noisy latents -> epsilon, whatever the model
        predicts (v or x0 converted with this step's alpha_bar), with SDXL's pooled embedding
        and time ids (packed in ``emb``, see engine/conditioning.py) on every call."""
        hidden, added = unet_inputs(self.unet, emb, latents)
        out = self.unet(
            latents.to(self.unet.dtype), t, encoder_hidden_states=hidden, added_cond_kwargs=added
        ).sample
        out = out.to(latents.dtype)
        if self.prediction_type == "epsilon":
            return out
        alpha_bar = self._alphas(latents.device)[t]
        return to_epsilon(out, latents, alpha_bar, self.prediction_type)

    def _cut_pass(
        self, z_trg, noise, scales, t, cond_trg, reference, generator, positions, measure
    ):
        """Grad pass over the target-cond samples: eps(z_t_trg, y_trg) and w.r.t. z_trg the
        gradient of sum over layers of PatchNCE(F_trg, sg(F_src)). ``positions`` holds the
        patch positions per layer of this step (drawn on the first chunk, reused after)."""
        s = self.settings
        z = z_trg.detach().requires_grad_(True)
        hw = tuple(z_trg.shape[-2:])
        meter = _SavedBytes(self.unet) if measure else None
        with torch.enable_grad(), meter or nullcontext():
            z_t = scales[0] * z + scales[1] * noise
            self.store.select(slice(None))
            eps = self._eps(z_t, t, cond_trg)
            query = self.store.take()
            loss = 0
            for layer, (q, k) in enumerate(zip(query, reference, strict=True)):
                trg, src = feature_grid(q.to(z.dtype), hw), feature_grid(k.to(z.dtype), hw)
                if layer not in positions:
                    positions[layer] = draw_positions(
                        trg.shape[-2:], s.patch_sizes, s.n_patches, generator, trg.device
                    )
                loss = (
                    loss
                    + patch_nce(
                        trg, src, s.patch_sizes, s.n_patches, s.tau, positions=positions[layer]
                    ).sum()
                )
        if meter is not None:
            self.bytes_per_target = meter.total // z.shape[0]
        (grad,) = torch.autograd.grad(loss, z)
        return eps.detach(), grad


class _SavedBytes(torch.autograd.graph.saved_tensors_hooks):
    """Counts the bytes autograd keeps for the backward pass (tensors the graph saves, each
    storage once, the module's own parameters excluded)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.total = 0
        seen = {p.untyped_storage().data_ptr() for p in module.parameters()}

        def pack(x: torch.Tensor) -> torch.Tensor:
            try:
                ptr = x.untyped_storage().data_ptr()
                if ptr not in seen:
                    seen.add(ptr)
                    self.total += x.untyped_storage().nbytes()
            except (RuntimeError, NotImplementedError):  # tensors without storage
                pass
            return x

        super().__init__(pack, lambda x: x)


def targets_per_chunk(count: int, bytes_per_target: int | None, budget: int) -> int:
    """How many targets go through the UNet together: all of them when their measured
    autograd memory (times MEMORY_HEADROOM) fits ``budget``, otherwise as many as fit (>= 1)."""
    if not bytes_per_target:
        return count
    return max(1, min(count, int(budget // (bytes_per_target * MEMORY_HEADROOM))))


def default_memory_budget(device: torch.device) -> int:
    """MEMORY_FRACTION of the free memory of ``device`` (bytes), for targets_per_chunk."""
    free = None
    try:
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
        elif device.type == "mps":
            free = torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()
        else:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError, RuntimeError):
        free = None
    return int(MEMORY_FRACTION * free) if free and free > 0 else FALLBACK_MEMORY_BUDGET


class Draws:
    """The random draws of a seeded edit, made on CPU generators and moved to the device.

    ``step`` draws t ~ U{lo..hi} and the noise (from ``seed``); ``patches`` draws the patch
    positions (from ``seed + PATCH_SEED_OFFSET``). The values depend only on the seed, never on
    the device, the number of targets or the mode."""

    def __init__(self, seed: int) -> None:
        self.noise = torch.Generator(device="cpu").manual_seed(seed)
        self.patches = torch.Generator(device="cpu").manual_seed(seed + PATCH_SEED_OFFSET)

    def step(self, t_range: tuple[int, int], shape, device) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = t_range
        t = torch.randint(lo, hi + 1, (), generator=self.noise)
        noise = torch.randn(tuple(shape), generator=self.noise)
        return t.to(device), noise.to(device)
