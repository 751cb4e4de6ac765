"""Cost of one CDS step on an SDXL-shaped UNet (random weights), through the shipped engine.

    python benchmarks/sdxl_step.py [--size 256] [--steps 2] [--device cpu|cuda]
                                   [--dtype fp32|fp16|bf16] [--width-scale 1.0]

The UNet is built from the carried SDXL config (resources/models/configs/sdxl: 2.6 B
parameters, transformer depths 1/2/10, ``text_time`` added conditioning); ``--width-scale``
scales its channel widths down (0.5 = a quarter of the parameters) for machines with little
memory. The prompt conditioning is random, packed as the engine packs SDXL prompts (hidden
states 2048 wide, pooled 1280, time ids from the region size), so every UNet call carries the
added conditioning. One step = CDSObjective.step_gradient (a no-grad pass over 3 samples and a
grad pass over 1 with PatchNCE on the up-block self-attention features).

Printed: parameters, seconds per step (each timed step), peak memory (process RSS on CPU,
torch.cuda.max_memory_allocated on CUDA). Full size on a GPU:
``python benchmarks/sdxl_step.py --device cuda --dtype fp16 --size 1024``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cds_desktop.engine import CDSObjective, EditSettings  # noqa: E402
from cds_desktop.engine.conditioning import pack, pooled_width  # noqa: E402
from cds_desktop.engine.resources import resource_path  # noqa: E402


def build(width_scale: float, device, dtype):
    from diffusers import DDPMScheduler, UNet2DConditionModel

    folder = resource_path("models", "configs", "sdxl")
    config = json.loads((folder / "unet" / "config.json").read_text())
    if width_scale != 1.0:
        config["block_out_channels"] = [int(c * width_scale) for c in config["block_out_channels"]]
        config["attention_head_dim"] = [
            max(1, int(h * width_scale)) for h in config["attention_head_dim"]
        ]
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(config).to(device=device, dtype=dtype).eval()
    unet.requires_grad_(False)
    scheduler = DDPMScheduler.from_pretrained(str(folder), subfolder="scheduler")
    return unet, scheduler


def peak_mib(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="image side in pixels (latent = size/8)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--width-scale", type=float, default=1.0)
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    t0 = time.perf_counter()
    unet, scheduler = build(args.width_scale, device, dtype)
    built = time.perf_counter() - t0
    params = sum(p.numel() for p in unet.parameters())
    side = args.size // 8
    g = torch.Generator(device="cpu").manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(device)

    width = unet.config.cross_attention_dim
    emb = [pack(randn(1, 77, width), randn(1, pooled_width(unet)), 8).to(dtype) for _ in range(3)]
    z_src = randn(1, 4, side, side)
    z_trg = z_src + 0.1 * randn(1, 4, side, side)
    objective = CDSObjective(unet, scheduler, EditSettings())
    times = []
    with objective.session():
        for step in range(args.steps):
            noise = randn(1, 4, side, side)
            start = time.perf_counter()
            grad = objective.step_gradient(z_src, z_trg, 50 + 300 * step, noise, *emb, g)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            assert torch.isfinite(grad).all()
    print(
        f"| {args.device} {args.dtype} | width x{args.width_scale} ({params / 1e9:.2f} B params) "
        f"| {args.size}² (latent {side}²) | {' / '.join(f'{t:.1f}' for t in times)} s "
        f"| {peak_mib(device):.0f} MiB | build {built:.0f} s |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
