"""The edit as a generator: :func:`run_edits` drives :class:`~.cds.CDSObjective` over the
steps, yields :class:`Progress` and returns one :class:`EditResult` per target prompt.

The CLI, the app (through engine.jobs) and the bridge all drive this one generator; previews
are computed here, on the thread that runs the edit, so no other thread touches the device.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch

from . import images
from .cds import CDSObjective, Draws, default_memory_budget, targets_per_chunk
from .errors import EditCancelled, NumericalError
from .settings import EditSettings, check_prompts

CancelFlag = threading.Event | Callable[[], bool] | None
#: the cheap previews (a device->host copy of the latents) are refreshed at most this often
#: (seconds; the app shows ~10 per second) and on the last step; a Progress in between carries
#: the latest ones, so a fast GPU loop is not synchronised with the host every step
PREVIEW_REFRESH_S = 0.1
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Progress:
    """Yielded once per step by :func:`run_edits`, for ``count`` targets.

    Holds no device tensors: the cheap previews (linear latent->RGB at latent resolution) are
    computed on the generating thread (refreshed every PREVIEW_REFRESH_S and on the last step), so
    any thread may read a Progress. ``decoded`` holds a
    full VAE decode of the working region per target every ``preview_every`` steps."""

    step: int
    total: int
    box: tuple[int, int, int, int]
    elapsed: float
    decoded: tuple[np.ndarray, ...] | None = None
    count: int = 1
    previews: tuple[np.ndarray, ...] = field(default=(), repr=False)

    def preview(self, index: int = 0) -> np.ndarray | None:
        """(h, w, 3) uint8 RGB of target ``index``'s working region (the decode when this
        step has one, else the cheap latent-resolution preview)."""
        if not 0 <= index < self.count:
            raise IndexError(f"preview index {index}: this edit has {self.count} target(s)")
        if self.decoded is not None:
            return self.decoded[index]
        return self.previews[index] if self.previews else None


def cheap_previews(z: torch.Tensor, projection: torch.Tensor) -> tuple[np.ndarray, ...]:
    """(K, C, h, w) latents -> K (h, w, 3) uint8 previews with a (C+1, 3) linear projection."""
    z = z.detach().float().cpu()
    x = torch.cat([z, torch.ones_like(z[:, :1])], dim=1).permute(0, 2, 3, 1) @ projection.cpu()
    arr = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    return tuple(arr)


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


def run_edits(
    model,
    image,
    source_prompt: str,
    targets: Sequence[str],
    mask=None,
    settings: EditSettings | None = None,
    cancel: CancelFlag = None,
    *,
    memory_budget: int | None = None,
) -> Generator[Progress, None, list[EditResult]]:
    """Edit ``image`` from ``source_prompt`` toward each of ``targets`` in one shared run.

    Yields one Progress per step (``count`` = K targets). Returns (StopIteration.value) one
    EditResult per target, in order; each equals that target edited alone with the same seed
    (to floating-point rounding). The target latents run as one batch, in chunks chosen so
    the measured autograd memory fits ``memory_budget`` (bytes; default MEMORY_FRACTION of the
    device's free memory): step 1 measures it with one target, then chooses. Raises
    EditCancelled within one step of ``cancel`` being set, EditError for bad input.
    """
    started = time.perf_counter()
    settings = (settings or EditSettings()).resolved(
        w_cut=model.recommended.get("w_cut"), working_size=model.native_size
    )
    targets = tuple(targets)
    check_prompts(source_prompt, targets)
    count = len(targets)
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
    draws = Draws(settings.seed)
    budget = default_memory_budget(device) if memory_budget is None else int(memory_budget)

    z_src = model.vae.encode(images.region_tensor(rgba, region).to(device)).float()
    z_trg = z_src.repeat(count, 1, 1, 1)
    uncond, cond_src = model.encode_prompt(""), model.encode_prompt(source_prompt)
    cond_trg = torch.cat([model.encode_prompt(t) for t in targets])
    objective = CDSObjective(model.unet, model.scheduler, settings)
    projection = model.rgb_projection().detach().float().cpu()
    measure = count > 1 and settings.effective_w_cut > 0
    chunk = 1 if measure else count
    previews, previews_at = (), float("-inf")
    with objective.session():
        for step in range(1, settings.steps + 1):
            if _cancelled(cancel):
                raise EditCancelled(f"cancelled at step {step - 1}/{settings.steps}")
            t, noise = draws.step(settings.t_range, z_src.shape, device)
            grad = objective.step_gradient(
                z_src,
                z_trg,
                t,
                noise,
                uncond,
                cond_src,
                cond_trg,
                draws.patches,
                chunk,
                measure=measure and step == 1,
            )
            if measure and step == 1:
                chunk = targets_per_chunk(count, objective.bytes_per_target, budget)
            z_trg = z_trg - settings.lr * grad
            decoded = None
            if (
                settings.preview_every
                and step % settings.preview_every == 0
                and step < settings.steps
            ):
                _check_finite(z_trg, step)
                decoded = tuple(_decode(model, z_trg[i : i + 1]) for i in range(count))
            now = time.perf_counter()
            if now - previews_at >= PREVIEW_REFRESH_S or step == settings.steps:
                previews, previews_at = cheap_previews(z_trg, projection), now
            yield Progress(
                step,
                settings.steps,
                region.box,
                time.perf_counter() - started,
                decoded,
                count,
                previews,
            )
    _check_finite(z_trg, settings.steps)
    results = []
    for i, target in enumerate(targets):
        edited = _decode(model, z_trg[i : i + 1])
        results.append(
            EditResult(
                image=images.composite(rgba, edited, region, mask_arr, settings.feather),
                region=edited,
                box=region.box,
                settings=settings,
                source_prompt=source_prompt,
                target_prompt=target,
                model_label=model.label,
                elapsed=time.perf_counter() - started,
                steps=settings.steps,
            )
        )
    return results


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
    results = yield from run_edits(
        model, image, source_prompt, (target_prompt,), mask, settings, cancel
    )
    return results[0]


def _decode(model, z: torch.Tensor) -> np.ndarray:
    return images.tensor_to_rgb(model.vae.decode(z))


def _check_finite(z: torch.Tensor, step: int) -> None:
    if not bool(torch.isfinite(z).all()):
        raise NumericalError(
            f"the optimisation diverged (NaN/Inf in the latent at step {step}); "
            "try a lower lr, w_cut or guidance, or fp32 (--dtype fp32)"
        )


def drain(gen: Generator[T, None, R], each: Callable[[T], object] | None = None) -> R:
    """Run a generator to its end and return its return value, calling ``each`` on every
    item it yields (the loop every caller of run_edit/run_edits needs)."""
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        if each is not None:
            each(item)


def edit(
    model, image, source_prompt: str, target_prompt: str, mask=None, settings=None, cancel=None
) -> EditResult:
    """Run :func:`run_edit` to the end and return its EditResult (no progress)."""
    return drain(run_edit(model, image, source_prompt, target_prompt, mask, settings, cancel))


def edits(
    model,
    image,
    source_prompt: str,
    targets: Sequence[str],
    mask=None,
    settings=None,
    cancel=None,
) -> list[EditResult]:
    """Run :func:`run_edits` to the end and return its EditResults (no progress)."""
    return drain(run_edits(model, image, source_prompt, targets, mask, settings, cancel))
