"""Cost of one CDS step: our loop structure vs a re-creation of the published one.

    python benchmarks/step_cost.py [--device cpu|cuda] [--arch tiny|sd15] [--size 512]
                                   [--dtype auto|fp32|fp16|bf16] [--steps 6] [--warmup 2]

* optimised: CDSObjective as shipped - one no-grad UNet pass over 3 samples (src-uncond,
  src-cond, trg-uncond), one grad pass over trg-cond only; UNet frozen; SDPA attention.
* published: the published code's structure - a no-grad pass over 4 samples for DDS, then a
  grad pass over 2 samples [src-cond, trg-cond] for the CUT loss; plain (non-fused) attention;
  the attn1 weights trainable (their gradients are computed).

Each variant runs in its own subprocess (clean peak memory). Printed: median seconds per
step, UNet sample-forwards and sample-backwards per step, peak memory (RSS on CPU,
torch.cuda.max_memory_allocated on CUDA) and the memory growth between the first and last
timed step (flat = no leak). Random weights: the timing does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

SD15_UNET = dict(
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    cross_attention_dim=768,
    attention_head_dim=8,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    sample_size=64,
    in_channels=4,
    out_channels=4,
)


def build_unet(arch: str, device, dtype):
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from cds_desktop.engine.models import tiny_random_components

    if arch == "tiny":
        parts = tiny_random_components()
        unet, scheduler, vae_factor, dim = parts["unet"], parts["scheduler"], 2, 32
    else:
        torch.manual_seed(0)
        unet = UNet2DConditionModel(**SD15_UNET)
        scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
        vae_factor, dim = 8, 768
    unet = unet.to(device=device, dtype=dtype).eval()
    unet.requires_grad_(False)
    return unet, scheduler, vae_factor, dim


class PublishedStep:
    """The published structure: 4-sample no-grad DDS pass + 2-sample grad CUT pass."""

    def __init__(self, unet, scheduler, settings) -> None:
        from diffusers.models.attention_processor import AttnProcessor

        from cds_desktop.engine.attention import FeatureStore, is_up_self_attention

        self.unet, self.s = unet, settings
        self.alphas = scheduler.alphas_cumprod.to(next(unet.parameters()).device)
        self.store = FeatureStore()
        store = self.store

        class PlainCapture(AttnProcessor):
            def __call__(self, attn, hidden_states, *args, **kwargs):
                out = super().__call__(attn, hidden_states, *args, **kwargs)
                store.add(out)
                return out

        procs = {n: (PlainCapture() if is_up_self_attention(n) else AttnProcessor()) for n in unet.attn_processors}
        unet.set_attn_processor(procs)
        for name, p in unet.named_parameters():
            p.requires_grad_(".attn1." in name)

    def step(self, z_src, z_trg, t, noise, uncond, cond_src, cond_trg, generator):
        from cds_desktop.engine.losses import feature_grid, guided, patch_nce

        s, unet, dt = self.s, self.unet, self.unet.dtype
        a = self.alphas[t].float()
        noised = lambda z: a.sqrt() * z + (1 - a).sqrt() * noise  # noqa: E731
        with torch.no_grad():
            eps = unet(torch.cat([noised(z_src), noised(z_trg)] * 2).to(dt), t,
                       encoder_hidden_states=torch.cat([uncond, uncond, cond_src, cond_trg])).sample.float()
            u_s, u_t, c_s, c_t = eps.chunk(4)
            dds = guided(u_t, c_t, s.guidance_scale) - guided(u_s, c_s, s.guidance_scale)
        z = z_trg.detach().requires_grad_(True)
        self.store.select(slice(None))
        unet(torch.cat([noised(z_src), noised(z)]).to(dt), t, encoder_hidden_states=torch.cat([cond_src, cond_trg]))
        hw = tuple(z.shape[-2:])
        nce = sum(
            patch_nce(feature_grid(f[1:2].float(), hw), feature_grid(f[0:1].float(), hw),
                      s.patch_sizes, s.n_patches, s.tau, generator).sum()
            for f in self.store.take()
        )
        loss = (z * dds).sum() * s.dds_gain(*hw) + s.effective_w_cut * nce
        loss.backward()
        for p in unet.parameters():
            p.grad = None
        return z.grad


class Counter:
    """Counts UNet samples going forward (forward hook) and backward (conv_in backward hook)."""

    def __init__(self, unet) -> None:
        self.fwd = self.bwd = 0
        unet.register_forward_pre_hook(self._pre)
        unet.conv_in.register_full_backward_hook(self._back)

    def _pre(self, _m, args):
        self.fwd += args[0].shape[0]

    def _back(self, _m, grad_in, grad_out):
        self.bwd += grad_out[0].shape[0]


def memory(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_variant(args) -> dict:
    from cds_desktop.engine import CDSObjective, EditSettings
    from cds_desktop.engine.models import pick_dtype

    device = torch.device(args.device)
    dtype = pick_dtype(device, args.dtype)
    unet, scheduler, vae_factor, dim = build_unet(args.arch, device, dtype)
    settings = EditSettings(w_cut=3.0)
    side = args.size // vae_factor
    g = torch.Generator(device=device).manual_seed(0)
    patches = torch.Generator().manual_seed(1)  # patch positions: a CPU generator, as the engine
    z_src = torch.randn(1, 4, side, side, device=device, generator=g)
    z_trg = z_src.clone()
    emb = [torch.randn(1, 77, dim, device=device, generator=g).to(dtype) for _ in range(3)]
    if args.variant == "published":
        runner = PublishedStep(unet, scheduler, settings)
        step = runner.step
        ctx = None
    else:
        objective = CDSObjective(unet, scheduler, settings)
        ctx = objective.session()
        ctx.__enter__()
        step = objective.step_gradient
    counter = Counter(unet)
    times, mem = [], []
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            counter.fwd = counter.bwd = 0
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
        t = torch.randint(50, 949, (), generator=g, device=device)
        noise = torch.randn(z_src.shape, generator=g, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        grad = step(z_src, z_trg, t, noise, *emb, patches)
        z_trg = z_trg - 0.1 * grad
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
            mem.append(memory(device))
    if ctx is not None:
        ctx.__exit__(None, None, None)
    return {
        "variant": args.variant,
        "median_s": statistics.median(times),
        "fwd_per_step": counter.fwd / args.steps,
        "bwd_per_step": counter.bwd / args.steps,
        "peak_mib": max(mem) if device.type == "cuda" else peak_rss_mib(),
        "growth_mib": mem[-1] - mem[0],
        "dtype": str(dtype).replace("torch.", ""),
    }


def machine(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        name = "unknown CPU"
    return f"{name}, {os.cpu_count()} logical cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--arch", default="tiny", choices=["tiny", "sd15"])
    p.add_argument("--size", type=int, default=512, help="image side in pixels")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--variant", choices=["optimised", "published"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args)))
        return
    rows = []
    for variant in ("published", "optimised"):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--variant", variant]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    pub, opt = rows
    print(f"# step cost: arch={args.arch} size={args.size} device={args.device} dtype={opt['dtype']}")
    print(f"# machine: {machine(args.device)}")
    print("| structure | median s/step | UNet fwd samples/step | UNet bwd samples/step | peak MiB | growth MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['variant']} | {r['median_s']:.4f} | {r['fwd_per_step']:.0f} | {r['bwd_per_step']:.0f} "
              f"| {r['peak_mib']:.0f} | {r['growth_mib']:+.1f} |")
    print(f"speed-up (published / optimised): {pub['median_s'] / opt['median_s']:.2f}x")


if __name__ == "__main__":
    main()
