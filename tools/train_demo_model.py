"""Train the embedded "shapes" demo model from scratch: a tiny Stable-Diffusion-1.x-shaped pipeline
for 64×64 images of one coloured shape ("a red circle", "a blue square", ...).

What it does, in order (all seeded; same seed + device + versions → same model on CPU):
1. renders the training scenes of ``cds_desktop.demo.world`` (seeds ≥ 1,000,000; the held-out
   seeds 0..9,999 are never used for training);
2. trains an AutoencoderKL (16/32/64 channels, 4× down, 4 latent channels, no attention) with
   MSE + 1e-7·KL, then sets its ``scaling_factor`` to 1/std of the training latents;
3. caches the latents (posterior mean and std of every scene and its mirror image);
4. trains a UNet2DConditionModel (32/64/128, cross-attention up blocks) jointly with a 2-layer
   CLIPTextModel on ε-prediction with the SD-1.x noise schedule, 10 % empty captions for
   classifier-free guidance, AdamW + warm-up + cosine, EMA weights;
5. saves a diffusers folder (model_index.json, vae/, unet/, text_encoder/, tokenizer/,
   scheduler/ — safetensors, fp32) loadable by ``StableDiffusionPipeline.from_pretrained``,
   plus ``cds_model.json``;
6. evaluates itself: VAE PSNR on held-out scenes, and DDIM samples (50 steps, CFG 5) of every
   caption judged by ``cds_desktop.demo.classify``; writes ``training_report.json`` and
   ``samples.png`` (green frame: colour and shape right, red: wrong).

Usage (from the repository root):
    python tools/train_demo_model.py --profile gpu                # one GPU, a few minutes
    python tools/train_demo_model.py --profile cpu --device cpu   # 2 CPU cores, under an hour
    python tools/train_demo_model.py --vae-steps 50 --unet-steps 50 --out /tmp/demo  # smoke test

See docs/demo-model.md for the profiles, expected numbers and how to check the result.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from cds_desktop.demo import world  # noqa: E402
from cds_desktop.demo.classify import classify, psnr  # noqa: E402
from cds_desktop.engine.tokenizer_files import write_clip_tokenizer  # noqa: E402

log = logging.getLogger("train_demo_model")

MODEL_LABEL = "shapes-demo (demo model: 64×64 coloured shapes only)"
IMAGE_SIZE = 64
KL_WEIGHT = 1e-7
CAPTION_DROPOUT = 0.1
NUM_TRAIN_TIMESTEPS = 1000
EVAL_GUIDANCE = 5.0
SCHEDULER_CONFIG = {
    "num_train_timesteps": NUM_TRAIN_TIMESTEPS,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "clip_sample": False,
    "set_alpha_to_one": False,
}


@dataclass(frozen=True)
class Profile:
    train_scenes: int  # distinct training scenes (each also mirrored)
    vae_steps: int
    vae_batch: int
    vae_lr: float
    unet_steps: int
    batch: int  # UNet batch
    unet_lr: float
    ema_decay: float
    eval_samples: int  # generated images judged by the classifier
    eval_scenes: int  # held-out scenes for the VAE PSNR
    eval_steps: int  # DDIM steps of the evaluation samples
    log_every: int


PROFILES: dict[str, Profile] = {
    # 2 CPU cores, about 40-45 min: with 2 threads a VAE step took ~0.9 s and a UNet step ~0.56 s;
    # encoding the 20k latents ~3 min, the evaluation under a minute.
    "cpu": Profile(
        train_scenes=10_000,
        vae_steps=600,
        vae_batch=32,
        vae_lr=1e-3,
        unet_steps=3_000,
        batch=64,
        unet_lr=8e-4,
        ema_decay=0.999,
        eval_samples=64,
        eval_scenes=256,
        eval_steps=50,
        log_every=100,
    ),
    # One H100, fp32 + TF32, about 3.5 min in all. This model is so small that a step costs its
    # kernel launches, not its arithmetic: ~26 VAE steps/s at batch 256 and ~12.8 UNet steps/s at
    # batch 512 were measured (about as fast as at half the batch), plus ~35 s of warm-up.
    "gpu": Profile(
        train_scenes=50_000,
        vae_steps=700,
        vae_batch=256,
        vae_lr=1e-3,
        unet_steps=1_500,
        batch=512,
        unet_lr=1e-3,
        ema_decay=0.999,
        eval_samples=192,
        eval_scenes=512,
        eval_steps=50,
        log_every=250,
    ),
}


# ---------------------------------------------------------------------------------------------
# 1. data


def _render_range(seeds: range) -> tuple[np.ndarray, np.ndarray]:
    scenes = [world.make_scene(s) for s in seeds]
    images = np.stack([s.image for s in scenes])
    labels = np.array([world.CAPTIONS.index(s.caption) for s in scenes], dtype=np.int64)
    return images, labels


def render_scenes(seeds: range, workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(N×64×64×3 uint8 images, N caption indices into ``world.CAPTIONS``), in seed order."""
    if workers <= 1 or len(seeds) < 4_000:
        return _render_range(seeds)
    step = math.ceil(len(seeds) / workers)
    chunks = [seeds[i : i + step] for i in range(0, len(seeds), step)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        parts = pool.map(_render_range, chunks)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """N×H×W×3 or N×3×H×W uint8 → float in [-1, 1] (channels first)."""
    if images_uint8.shape[-1] == 3:
        images_uint8 = images_uint8.permute(0, 3, 1, 2)
    return images_uint8.float() / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """N×3×H×W float in [-1, 1] → N×H×W×3 uint8."""
    images = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return images.permute(0, 2, 3, 1).cpu().numpy()


# ---------------------------------------------------------------------------------------------
# 2. models


def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64),
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=IMAGE_SIZE,
        mid_block_add_attention=False,
        force_upcast=False,
        scaling_factor=1.0,
    )


def build_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 4,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64, 128),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=64,
        attention_head_dim=8,  # diffusers' name for the number of heads here
        norm_num_groups=8,
    )


def build_text_encoder(tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=tokenizer.model_max_length,
        projection_dim=64,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def build_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SCHEDULER_CONFIG)


# ---------------------------------------------------------------------------------------------
# 3. training helpers


def warmup_cosine(steps: int, warmup: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def make_optimizer(params: list[torch.nn.Parameter], lr: float, steps: int, device: torch.device):
    extra = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=0.01, **extra)
    warmup = max(1, min(200, steps // 20))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(steps, warmup))


class Ema:
    """Exponential moving average of parameters, with the usual warm-up of the decay."""

    def __init__(self, params: Sequence[torch.nn.Parameter], decay: float):
        self.params = list(params)
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay = decay

    @torch.no_grad()
    def update(self, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - decay)

    @torch.no_grad()
    def copy_to_params(self) -> None:
        for p, s in zip(self.params, self.shadow):
            p.copy_(s)


class LossMeter:
    """Sums losses on the device; reads them back (one host sync) only when logging."""

    def __init__(self, name: str, total_steps: int, every: int):
        self.name, self.total, self.every = name, total_steps, max(1, every)
        self.sum: torch.Tensor | None = None
        self.count, self.last, self.t0 = 0, float("nan"), time.perf_counter()

    def add(self, step: int, loss: torch.Tensor, lr: float) -> None:
        loss = loss.detach()
        self.sum = loss if self.sum is None else self.sum + loss
        self.count += 1
        if (step + 1) % self.every == 0 or step + 1 == self.total:
            self.last = float(self.sum) / self.count
            rate = (step + 1) / (time.perf_counter() - self.t0)
            log.info(
                "%s step %d/%d  loss %.5f  lr %.2e  %.1f steps/s",
                self.name,
                step + 1,
                self.total,
                self.last,
                lr,
                rate,
            )
            self.sum, self.count = None, 0


def train_vae(vae, images: torch.Tensor, profile: Profile, gen: torch.Generator) -> dict:
    """images: N×3×64×64 uint8 on the training device."""
    device = images.device
    vae.train()
    opt, sched = make_optimizer(list(vae.parameters()), profile.vae_lr, profile.vae_steps, device)
    meter = LossMeter("vae", profile.vae_steps, profile.log_every)
    n, b = images.shape[0], profile.vae_batch
    for step in range(profile.vae_steps):
        idx = torch.randint(0, n, (b,), generator=gen, device=device)
        x = to_model_range(images[idx])
        flip = torch.rand(b, 1, 1, 1, generator=gen, device=device) < 0.5
        x = torch.where(flip, x.flip(-1), x)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=gen)).sample
        loss = F.mse_loss(recon, x) + KL_WEIGHT * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        meter.add(step, loss, sched.get_last_lr()[0])
    vae.eval()
    return {"final_loss": meter.last}


@torch.no_grad()
def encode_posteriors(vae, images: torch.Tensor):
    """Posterior (mean, std) of every image and of its mirror image: 2N×4×16×16 each."""
    chunk = 1024 if images.device.type == "cuda" else 128
    means, stds = [], []
    for flip in (False, True):
        for i in range(0, images.shape[0], chunk):
            x = to_model_range(images[i : i + chunk])
            dist = vae.encode(x.flip(-1) if flip else x).latent_dist
            means.append(dist.mean)
            stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


def caption_ids(tokenizer, device: torch.device) -> torch.Tensor:
    """Token ids of every caption plus the empty caption (last row), padded like the pipeline."""
    prompts = [*world.CAPTIONS, ""]
    ids = tokenizer(
        prompts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    return ids.to(device)


def train_unet(
    unet,
    text_encoder,
    latents: tuple[torch.Tensor, torch.Tensor],
    labels: torch.Tensor,
    ids: torch.Tensor,
    profile: Profile,
    gen: torch.Generator,
) -> dict:
    """ε-prediction on scaled latents (posterior samples); the text encoder learns jointly.

    Only 13 distinct captions exist, so the text encoder runs once per step on those and each
    sample picks its row: the same gradients as encoding every caption of the batch.
    """
    device = labels.device
    means, stds = latents
    abar = torch.cumprod(1.0 - build_scheduler().betas, 0).to(device)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt, sched = make_optimizer(params, profile.unet_lr, profile.unet_steps, device)
    ema = Ema(params, profile.ema_decay)
    meter = LossMeter("unet", profile.unet_steps, profile.log_every)
    unet.train()
    text_encoder.train()
    n, b, empty = means.shape[0], profile.batch, ids.shape[0] - 1
    for step in range(profile.unet_steps):
        idx = torch.randint(0, n, (b,), generator=gen, device=device)
        z0 = means[idx] + stds[idx] * torch.randn(
            (b, *means.shape[1:]), generator=gen, device=device
        )
        drop = torch.rand(b, generator=gen, device=device) < CAPTION_DROPOUT
        rows = torch.where(drop, torch.full_like(labels[idx], empty), labels[idx])
        t = torch.randint(0, NUM_TRAIN_TIMESTEPS, (b,), generator=gen, device=device)
        noise = torch.randn(z0.shape, generator=gen, device=device)
        a = abar[t].view(b, 1, 1, 1)
        zt = a.sqrt() * z0 + (1.0 - a).sqrt() * noise
        context = text_encoder(ids)[0][rows]
        pred = unet(zt, t, encoder_hidden_states=context).sample
        loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        ema.update(step)
        meter.add(step, loss, sched.get_last_lr()[0])
    ema.copy_to_params()
    unet.eval()
    text_encoder.eval()
    return {"final_loss": meter.last}


# ---------------------------------------------------------------------------------------------
# 4. saving and evaluation


def save_pipeline(out: Path, vae, unet, text_encoder, tokenizer) -> None:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=build_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.to("cpu")
    pipe.save_pretrained(out, safe_serialization=True)
    # Keep the tokenizer folder to the plain CLIP files (vocab.json, merges.txt, config), which
    # every transformers version reads; save_pretrained adds version-specific extras.
    shutil.rmtree(out / "tokenizer")
    write_clip_tokenizer(out / "tokenizer", world.vocabulary(), tokenizer.model_max_length)
    model_info = {"label": MODEL_LABEL, "kind": "demo", "native_size": IMAGE_SIZE}
    model_info["recommended"] = {"w_cut": None}  # filled in by the quality benchmark
    (out / "cds_model.json").write_text(json.dumps(model_info, indent=2, ensure_ascii=False))


def folder_size_mb(out: Path) -> float:
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20


@torch.no_grad()
def evaluate_vae(vae, device: torch.device, n_scenes: int) -> dict:
    scenes = [world.make_scene(s) for s in world.HELD_OUT_SEEDS[:n_scenes]]
    images = np.stack([s.image for s in scenes])
    x = to_model_range(torch.from_numpy(images).to(device))
    decoded = to_uint8(vae.decode(vae.encode(x).latent_dist.mean).sample)
    scores = [psnr(a, b) for a, b in zip(images, decoded)]
    right = sum(classify(img) == (s.colour, s.shape) for img, s in zip(decoded, scenes))
    return {
        "scenes": n_scenes,
        "psnr_db_mean": float(np.mean(scores)),
        "psnr_db_min": float(np.min(scores)),
        "classifier_on_roundtrip": right / max(1, n_scenes),
    }


def eval_prompts(n: int) -> list[str]:
    """n captions cycling through every caption (balanced)."""
    return [world.CAPTIONS[i % len(world.CAPTIONS)] for i in range(n)]


@torch.no_grad()
def evaluate_samples(
    out: Path, device: torch.device, n: int, steps: int, seed: int
) -> tuple[dict, np.ndarray, list[bool]]:
    """Sample the saved folder with StableDiffusionPipeline and judge each image."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        out, safety_checker=None, requires_safety_checker=False
    ).to(device)
    pipe.set_progress_bar_config(disable=True)
    prompts = eval_prompts(n)
    gen = torch.Generator(device=device).manual_seed(seed)
    images = []
    for i in range(0, n, 64):
        result = pipe(
            prompts[i : i + 64],
            height=IMAGE_SIZE,
            width=IMAGE_SIZE,
            num_inference_steps=steps,
            guidance_scale=EVAL_GUIDANCE,
            generator=gen,
            output_type="np",
        )
        images.append((np.clip(result.images, 0, 1) * 255).round().astype(np.uint8))
    images = np.concatenate(images)
    colour_ok, shape_ok, both_ok = [], [], []
    per_caption: dict[str, list[bool]] = {c: [] for c in world.CAPTIONS}
    for prompt, img in zip(prompts, images):
        _, colour, shape = prompt.split()
        got = classify(img)
        colour_ok.append(got[0] == colour)
        shape_ok.append(got[1] == shape)
        both_ok.append(got == (colour, shape))
        per_caption[prompt].append(both_ok[-1])
    report = {
        "samples": n,
        "ddim_steps": steps,
        "guidance_scale": EVAL_GUIDANCE,
        "colour_correct": float(np.mean(colour_ok)),
        "shape_correct": float(np.mean(shape_ok)),
        "both_correct": float(np.mean(both_ok)),
        "per_caption_both_correct": {k: float(np.mean(v)) for k, v in per_caption.items() if v},
    }
    return report, images, both_ok


def sample_grid(images: np.ndarray, ok: Sequence[bool], columns: int = 12) -> Image.Image:
    """Images in rows of ``columns`` (one caption per column), framed green (right) / red."""
    cell = IMAGE_SIZE + 4
    rows = math.ceil(len(images) / columns)
    grid = np.full((rows * cell, columns * cell, 3), 255, dtype=np.uint8)
    for k, (img, good) in enumerate(zip(images, ok)):
        r, c = divmod(k, columns)
        y, x = r * cell, c * cell
        grid[y : y + cell, x : x + cell] = (40, 170, 60) if good else (220, 30, 30)
        grid[y + 2 : y + 2 + IMAGE_SIZE, x + 2 : x + 2 + IMAGE_SIZE] = img
    return Image.fromarray(grid)


# ---------------------------------------------------------------------------------------------
# 5. command line


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Profile]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "resources" / "models" / "shapes-demo")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None)
    p.add_argument("--profile", choices=sorted(PROFILES), default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vae-steps", type=int)
    p.add_argument("--vae-batch", type=int)
    p.add_argument("--unet-steps", type=int)
    p.add_argument("--batch", type=int, help="UNet batch size")
    p.add_argument("--train-scenes", type=int)
    p.add_argument("--eval-samples", type=int)
    p.add_argument("--eval-scenes", type=int)
    p.add_argument("--eval-steps", type=int)
    p.add_argument("--log-every", type=int)
    p.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    args = p.parse_args(argv)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    if args.profile is None:
        args.profile = "gpu" if args.device == "cuda" else "cpu"
    profile = PROFILES[args.profile]
    overrides = {
        field: getattr(args, field)
        for field in asdict(profile)
        if getattr(args, field, None) is not None
    }
    profile = replace(profile, **overrides)
    for field, value in asdict(profile).items():
        if field not in ("vae_lr", "unet_lr", "ema_decay") and value < 1:
            p.error(f"{field}={value}: expected a positive number")
    return args, profile


def main(argv: Sequence[str] | None = None) -> dict:
    args, profile = parse_args(argv)
    device = torch.device(args.device)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    log.info("profile %s on %s: %s", args.profile, device, profile)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    def phase(name: str, t0: float) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
        timings[name] = round(time.perf_counter() - t0, 2)
        log.info("%s done in %.1f s", name, timings[name])

    t0 = time.perf_counter()  # render first: the worker processes fork before CUDA starts
    images_np, labels_np = render_scenes(world.training_seeds(profile.train_scenes), args.workers)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(args.seed)  # model initialisation
    gen = torch.Generator(device=device).manual_seed(args.seed)  # batches, noise, flips
    images = torch.from_numpy(images_np).permute(0, 3, 1, 2).contiguous().to(device)
    labels = torch.from_numpy(labels_np).to(device)
    phase("render_scenes", t0)

    t0 = time.perf_counter()
    vae = build_vae().to(device)
    vae_report = train_vae(vae, images, profile, gen)
    means, stds = encode_posteriors(vae, images)
    scaling = float(1.0 / means.std())
    vae.register_to_config(scaling_factor=scaling)
    latents = (means * scaling, stds * scaling)
    labels = torch.cat([labels, labels])  # the mirrored copies
    del images
    phase("vae", t0)

    t0 = time.perf_counter()
    from transformers import CLIPTokenizer

    tokenizer_dir = out / "tokenizer"
    write_clip_tokenizer(tokenizer_dir, world.vocabulary())
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    text_encoder = build_text_encoder(tokenizer).to(device)
    unet = build_unet().to(device)
    unet_report = train_unet(
        unet, text_encoder, latents, labels, caption_ids(tokenizer, device), profile, gen
    )
    phase("unet", t0)

    t0 = time.perf_counter()
    save_pipeline(out, vae, unet, text_encoder, tokenizer)
    vae.to(device)
    vae_eval = evaluate_vae(vae, device, profile.eval_scenes)
    sample_eval, samples, ok = evaluate_samples(
        out, device, profile.eval_samples, profile.eval_steps, args.seed
    )
    sample_grid(samples, ok).save(out / "samples.png")
    phase("evaluate", t0)

    timings["total"] = round(time.perf_counter() - started, 2)
    report = {
        "profile": args.profile,
        "settings": asdict(profile),
        "seed": args.seed,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "diffusers": _version("diffusers"),
            "transformers": _version("transformers"),
        },
        "vae": {**vae_report, "scaling_factor": scaling, **vae_eval},
        "unet": unet_report,
        "samples": sample_eval,
        "folder_mb": round(folder_size_mb(out), 2),
        "seconds": timings,
    }
    (out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    log.info(
        "VAE PSNR %.2f dB; samples right: colour %.0f%%, shape %.0f%%, both %.0f%%",
        vae_eval["psnr_db_mean"],
        100 * sample_eval["colour_correct"],
        100 * sample_eval["shape_correct"],
        100 * sample_eval["both_correct"],
    )
    log.info("wrote %s (%.1f MB); whole run %.1f s", out, report["folder_mb"], timings["total"])
    return report


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    main()
