"""Per-target cost of K target prompts: one shared run vs K separate runs, side by side.

    python benchmarks/multi_target.py [--device cpu|cuda] [--arch tiny|sd15] [--size 256]
                                      [--dtype auto|fp32|fp16|bf16] [--ks 1,2,4,8]
                                      [--steps 3] [--warmup 1] [--threads N]

*shared*: ``CDSObjective.step_gradient`` with one source row and K target rows, as
``run_edits`` runs it: the source branch (src-uncond, src-cond and its features) once per step,
the K target latents as one batch, in chunks from the engine's memory-budget rule (one target's
autograd memory measured on the first warm-up step, see ``targets_per_chunk``). *separate*: K single-target steps, as K separate
edits would run them (each recomputing the source branch). Both with the same draws, random
UNet weights (the timing does not depend on them), CDS at w_cut 3, shared and separate run
back to back on each timed step (order alternating) so both see the same machine load; the
K = 1 row (identical work) shows the noise of the ratio. Printed: median seconds
per step of the K targets, seconds per target, the ratio separate/shared, the chunk size and
peak memory (torch.cuda.max_memory_allocated on CUDA; on the CPU the process's peak RSS so far).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from step_cost import build_unet, machine, peak_rss_mib  # benchmarks/ is on sys.path when run


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--arch", default="tiny", choices=["tiny", "sd15"])
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    p.add_argument("--ks", default="1,2,4,8")
    p.add_argument("--steps", type=int, default=3, help="timed steps per K")
    p.add_argument("--warmup", type=int, default=1, help="untimed one-target steps before the first K")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from cds_desktop.engine import CDSObjective, EditSettings
    from cds_desktop.engine.cds import Draws, default_memory_budget, targets_per_chunk
    from cds_desktop.engine.models import pick_dtype

    device = torch.device(args.device)
    dtype = pick_dtype(device, args.dtype)
    unet, scheduler, vae_factor, dim = build_unet(args.arch, device, dtype)
    settings = EditSettings(w_cut=3.0)
    side = args.size // vae_factor
    g = torch.Generator().manual_seed(0)
    z_src = torch.randn(1, 4, side, side, generator=g).to(device)
    uncond, cond_src = (torch.randn(1, 77, dim, generator=g).to(device, dtype) for _ in range(2))
    ks = [int(k) for k in args.ks.split(",")]
    budget = default_memory_budget(device)
    objective = CDSObjective(unet, scheduler, settings)
    rows = []
    with objective.session():
        # warm-up (untimed) with one target; the first of these steps also measures one
        # target's autograd memory, from which the chunk size of every K follows (as run_edits)
        draws = Draws(1)
        for i in range(max(1, args.warmup)):
            t, noise = draws.step(settings.t_range, z_src.shape, device)
            objective.step_gradient(
                z_src, z_src.clone(), t, noise, uncond, cond_src, cond_src, draws.patches, 1,
                measure=i == 0,
            )
        for k in ks:
            cond_trg = torch.randn(k, 77, dim, generator=g).to(device, dtype)
            z_trg = z_src + 0.1 * torch.randn(k, *z_src.shape[1:], generator=g).to(device)
            draws = Draws(0)
            chunk = targets_per_chunk(k, objective.bytes_per_target, budget)
            shared_t, separate_t = [], []
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            for step in range(args.steps):
                t, noise = draws.step(settings.t_range, z_src.shape, device)
                for variant in ("shared", "separate")[:: 1 if step % 2 == 0 else -1]:
                    sync(device)
                    start = time.perf_counter()
                    if variant == "shared":
                        objective.step_gradient(
                            z_src, z_trg, t, noise, uncond, cond_src, cond_trg, draws.patches, chunk
                        )
                    else:
                        for j in range(k):
                            objective.step_gradient(
                                z_src, z_trg[j : j + 1], t, noise, uncond, cond_src,
                                cond_trg[j : j + 1], draws.patches,
                            )
                    sync(device)
                    (shared_t if variant == "shared" else separate_t).append(time.perf_counter() - start)
            peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mib()
            sh, se = statistics.median(shared_t), statistics.median(separate_t)
            rows.append((k, chunk, sh, se, peak))
            print(f"K={k}: shared {sh:.3f} s, separate {se:.3f} s, chunk {chunk}", flush=True)

    print(f"\n# K targets: arch={args.arch} size={args.size} device={args.device} "
          f"dtype={str(dtype).replace('torch.', '')}, median of {args.steps} timed steps per K, "
          f"{max(1, args.warmup)} warm-up step(s) first")
    print(f"# one target's autograd memory (measured): {objective.bytes_per_target / 2**20:.0f} MiB")
    print(f"# machine: {machine(args.device)}; load average at the end {os.getloadavg()[0]:.1f}")
    print(f"# memory budget for a chunk: {budget / 2**30:.1f} GiB")
    print("| K | targets per chunk | shared s/step | separate s/step | shared s/target | "
          "separate s/target | separate / shared | peak MiB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k, chunk, sh, se, peak in rows:
        print(f"| {k} | {chunk} | {sh:.3f} | {se:.3f} | {sh / k:.3f} | {se / k:.3f} | {se / sh:.2f}x | {peak:.0f} |")


if __name__ == "__main__":
    main()
