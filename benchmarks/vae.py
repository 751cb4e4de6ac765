"""Benchmark the VAE backends (torch vs onnxruntime) on a full SD-1.5-shaped VAE.

Random weights (the AutoencoderKL config of SD 1.5 written below; no download), built through
the engine's own ``create_backend`` so what is timed is what the engine runs. Prints one table:
median wall time of ``--repeats`` runs of encode and decode per size (after ``--warmup``
untimed runs), and the largest peak memory of those runs (CPU: resident-set growth over the
call, sampled by a thread with psutil; CUDA: peak device memory above the pre-call level, from
torch's allocator for torch and from ``cudaMemGetInfo`` for onnxruntime, whose allocator torch
cannot see). Sizes above 1024² are tiled by both backends (engine/vae/tiling.py).

    python benchmarks/vae.py --device cpu --sizes 512,1024 --repeats 3
    python benchmarks/vae.py --device cuda --sizes 512,1024,2048

The ONNX export goes to a temporary cache (``--cache-dir`` to keep it). On a CUDA machine
without onnxruntime-gpu the ONNX rows are skipped with a note; torch is still measured.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too

log = logging.getLogger("benchmarks.vae")

SD15_VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}


@dataclass
class Row:
    backend: str
    op: str
    size: int
    median_s: float
    runs: int
    peak_mb: float | None


# ----------------------------------------------------------------------------- memory
class PeakSampler:
    """Peak of ``read()`` minus its value at start, sampled every ``interval`` s in a thread."""

    def __init__(self, read: Callable[[], int], interval: float = 0.002) -> None:
        self.read, self.interval = read, interval
        self.base = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.read())
            time.sleep(self.interval)

    def __enter__(self) -> PeakSampler:
        self.base = self.peak = self.read()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.read())

    @property
    def delta_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def memory_reader(device: torch.device, backend: str) -> Callable[[], int] | None:
    if device.type == "cuda":
        if backend == "torch":
            return None  # torch.cuda.max_memory_allocated is exact for torch
        return lambda: (lambda free, total: total - free)(*torch.cuda.mem_get_info(device))
    try:
        import psutil
    except ImportError:
        return None
    proc = psutil.Process()
    return lambda: proc.memory_info().rss


# ----------------------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release_freed_memory() -> None:
    """Return freed heap pages to the OS so the next RSS delta is not hidden by reuse."""
    gc.collect()
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def measured_call(fn: Callable[[], object], device: torch.device, backend: str):
    """Run ``fn`` once: (wall seconds, peak memory above the pre-call level in MiB or None)."""
    release_freed_memory()
    reader = memory_reader(device, backend)
    if device.type == "cuda" and backend == "torch":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    sampler = PeakSampler(reader) if reader else contextlib.nullcontext()
    sync(device)
    with sampler:
        start = time.perf_counter()
        fn()
        sync(device)
        elapsed = time.perf_counter() - start
    if device.type == "cuda" and backend == "torch":
        return elapsed, (torch.cuda.max_memory_allocated(device) - before) / 2**20
    return elapsed, sampler.delta_mb if reader else None


def bench_backend(backend, device: torch.device, sizes: list[int], repeats: int, warmup: int):
    rows = []
    f = backend.scale_factor
    backend.decode(backend.encode(torch.zeros(1, 3, 64, 64, device=device)))  # load / init
    for size in sizes:
        image = (torch.rand(1, 3, size, size, device=device) * 2 - 1).contiguous()
        latent = torch.randn(1, backend.latent_channels, size // f, size // f, device=device)
        for op, fn in (
            ("encode", lambda x=image: backend.encode(x)),
            ("decode", lambda z=latent: backend.decode(z)),
        ):
            for _ in range(warmup):
                fn()
            runs = [measured_call(fn, device, backend.name) for _ in range(repeats)]
            peaks = [p for _, p in runs if p is not None]
            row = Row(
                backend.name,
                op,
                size,
                statistics.median(t for t, _ in runs),
                repeats,
                max(peaks) if peaks else None,
            )
            rows.append(row)
            log.info(
                "%s %s %d: %.2f s, peak %s MiB", row.backend, op, size, row.median_s, row.peak_mb
            )
    return rows


# ----------------------------------------------------------------------------- setup
def onnx_status(device: torch.device) -> str | None:
    """None if the ONNX backend can run on ``device`` with its own provider, else why not."""
    from cds_desktop.engine.vae.onnx_vae import unavailable_reason

    return unavailable_reason(device)


def build(kind: str, device: torch.device):
    from diffusers import AutoencoderKL

    from cds_desktop.engine.vae import create_backend

    torch.manual_seed(0)
    vae = AutoencoderKL(**SD15_VAE_CONFIG).eval()
    start = time.perf_counter()
    backend = create_backend(vae, kind, device, torch.float32, identity="sd15-shaped-random")
    return backend, time.perf_counter() - start


def describe_machine(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    parts = [f"CPU: {cpu}, {os.cpu_count()} logical cores", f"torch {torch.__version__}"]
    if device.type == "cuda":
        parts.insert(1, f"GPU: {torch.cuda.get_device_name(device)}")
    try:
        import onnxruntime as ort

        parts.append(f"onnxruntime {ort.__version__} {ort.get_available_providers()}")
    except ImportError:
        parts.append("onnxruntime: not installed")
    parts.append(f"torch threads {torch.get_num_threads()}")
    return "; ".join(parts)


def print_table(rows: list[Row], device: torch.device) -> None:
    mem = "peak RSS delta (MiB)" if device.type == "cpu" else "peak GPU mem (MiB)"
    print(f"| backend | op | size | median (s) | runs | {mem} |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        peak = "n/a" if r.peak_mb is None else f"{r.peak_mb:.0f}"
        print(f"| {r.backend} | {r.op} | {r.size}² | {r.median_s:.3f} | {r.runs} | {peak} |")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--sizes", default="512,1024", help="comma-separated square sizes (px)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per cell first")
    p.add_argument("--backends", default="torch,onnx", help="comma-separated: torch,onnx")
    p.add_argument("--cache-dir", help="ONNX export cache (default: a temporary folder)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda, but this torch build sees no CUDA GPU", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    kinds = [k.strip() for k in args.backends.split(",") if k.strip()]
    with tempfile.TemporaryDirectory(prefix="cds-vae-bench-") as tmp:
        os.environ["CDS_CACHE_DIR"] = args.cache_dir or tmp
        rows, notes = [], []
        for kind in kinds:
            why_not = onnx_status(device) if kind == "onnx" else None
            if why_not:
                notes.append(f"onnx skipped: {why_not}")
                continue
            backend, setup_s = build(kind, device)
            if backend.name != kind:
                notes.append(f"{kind} skipped: create_backend fell back to {backend.name}")
                continue
            notes.append(f"{kind}: backend setup {setup_s:.1f} s (onnx: includes the export)")
            if kind == "onnx":
                notes.append(f"onnx: second start (cached export) {build(kind, device)[1]:.1f} s")
            rows += bench_backend(backend, device, sizes, args.repeats, args.warmup)
            del backend
    print(f"\nVAE backends, SD-1.5-shaped VAE (random weights), {describe_machine(device)}\n")
    print_table(rows, device)
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
