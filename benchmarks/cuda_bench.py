"""The CUDA benchmark report: every GPU number the project records, from one command.

    python benchmarks/cuda_bench.py [--device cuda] [--out DIR] [--budget 570]
    python benchmarks/cuda_bench.py --device cpu --quick     # smoke run: every part, tiny sizes

Parts (each in its own subprocess, so peak memory is per part and one crash or hang cannot
take the others; each stopped after its own time cap and the overall ``--budget``):

* machine    GPU name, memory, driver, torch/CUDA/cuDNN, diffusers, onnxruntime and providers.
* step       one CDS step of the shipped loop against the published loop structure
             (benchmarks/step_cost.py: median s/step, UNet samples per step, peak memory).
* edit       a whole edit (default 200 steps) including the VAE encode, previews and decode.
* multi      K = 4 targets in one shared run (engine ``run_edits``) against 4 separate runs,
             and the largest pixel difference between the two; "not available" when the
             engine in this checkout has no ``run_edits``.
* vae        the torch VAE against the ONNX VAE (onnxruntime-gpu: CUDA provider, IO binding),
             encode and decode at 512 and 1024 px (benchmarks/vae.py's measurement).
* sdxl       one CDS step on a full-size SDXL-shaped UNet at 1024 px; "not available" when the
             engine has no SDXL conditioning (engine/conditioning.py).
* precision  fp16 against fp32 on the same inputs: each step's gradient (relative L2
             difference, cosine) along a few steps, and the edit's displacement after them.
* seed       the same seeded edit (tiny fixture, fp32) on the CPU and on the device: how far
             apart the two images are.
* tests      the engine test suite (tests/engine) once with CDS_TEST_DEVICE set to the device.

Full size (default): SD-1.5-shaped UNet (860 M parameters) and VAE at 512 px in fp16, SDXL-
shaped UNet at 1024 px in fp16. ``--quick``: the tiny fixture UNet/VAE at 32 px, a reduced
SDXL-shaped UNet at 64 px, 1 to 3 steps per part and one engine test; it runs on the CPU too
and is what the test suite runs. All models are random-weight fixtures built here (timing and
memory do not depend on the weights; the images are noise); nothing is downloaded, nothing is
trained. Results: tables on stdout and in ``DIR/results.md``, everything in
``DIR/results.json``, each part's log in ``DIR/logs/``. Exit status 0 when every part ran or
was not available, 1 when a part failed or ran out of time, 2 when the device is missing.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(HERE), str(ROOT)):  # step_cost.py / vae.py, and the package from a plain checkout
    if _p not in sys.path:
        sys.path.insert(0, _p)

PROMPTS = (
    "a photo of a cat",
    "a photo of a dog",
    "a photo of a pig",
    "a photo of a cow",
    "a photo of a horse",
    "a photo of a bird",
    "a photo of a red car",
    "a photo of a tree",
)


@dataclass(frozen=True)
class Plan:
    """What each part measures, at full size or in the quick smoke mode."""

    arch: str  # UNet of the step/edit/multi/precision parts: sd15 (full size) or tiny
    size: int  # image side (px) of those parts
    step_steps: int
    step_warmup: int
    edit_steps: int
    k: int
    multi_steps: int
    vae_sizes: tuple[int, ...]
    vae_repeats: int
    sdxl_size: int
    sdxl_full: bool
    sdxl_steps: int
    precision_ts: tuple[int, ...]
    seed_steps: int
    tests: tuple[str, ...]


FULL = Plan(
    arch="sd15", size=512, step_steps=8, step_warmup=3, edit_steps=200, k=4, multi_steps=50,
    vae_sizes=(512, 1024), vae_repeats=3, sdxl_size=1024, sdxl_full=True, sdxl_steps=3,
    precision_ts=(100, 300, 500, 700, 900), seed_steps=10, tests=("tests/engine",),
)  # fmt: skip
QUICK = Plan(
    arch="tiny", size=32, step_steps=2, step_warmup=1, edit_steps=3, k=4, multi_steps=2,
    vae_sizes=(32,), vae_repeats=1, sdxl_size=64, sdxl_full=False, sdxl_steps=1,
    precision_ts=(300, 700), seed_steps=2,
    tests=("tests/engine/test_edit.py", "-k", "same_seed"),
)  # fmt: skip

# (part, time cap in seconds at full size). The caps add up to more than the budget: most
# parts take a fraction of their cap on a current GPU; the budget stops the run at 10 minutes.
PARTS = (
    ("machine", 60),
    ("step", 150),
    ("edit", 150),
    ("multi", 150),
    ("vae", 180),
    ("sdxl", 120),
    ("precision", 90),
    ("seed", 60),
    ("tests", 240),
)

# seconds kept free for a part while earlier parts run (the rest is shared out in order)
RESERVE = {"tests": 120, "seed": 30, "precision": 40}


class Unavailable(Exception):
    """The part cannot run with this checkout or installation (reported, not a failure)."""


# ============================================================================ helpers (child)
def _torch():
    import torch

    return torch


def sync(device) -> None:
    if device.type == "cuda":
        _torch().cuda.synchronize(device)


def reset_peak(device) -> None:
    torch = _torch()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device) -> float:
    """Peak device memory since reset_peak (CUDA), else the process's peak RSS so far."""
    if device.type == "cuda":
        return _torch().cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def drain(gen, device):
    """Run an edit generator to the end: (its return value, perf_counter after each step)."""
    marks = []
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value, marks
        sync(device)
        marks.append(time.perf_counter())


def sample_image(size: int, seed: int = 0):
    """A smooth random RGB image (uint8), the same for every run of a part."""
    import numpy as np

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3)).astype(np.float32)
    reps = -(-size // 8)
    return np.kron(small, np.ones((reps, reps, 1), np.float32))[:size, :size].astype(np.uint8)


def sd15_model(device, dtype_name: str):
    """A LoadedModel with SD-1.5-shaped UNet, VAE and CLIP text encoder (random weights; the
    tokenizer and scheduler of the tiny fixture, which has SD's noise schedule)."""
    torch = _torch()
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from step_cost import SD15_UNET
    from transformers import CLIPTextConfig, CLIPTextModel
    from vae import SD15_VAE_CONFIG

    from cds_desktop.engine import models

    parts = models.tiny_random_components()
    tok = parts["tokenizer"]
    dt = models.pick_dtype(device, dtype_name)
    with torch.device(device):  # random init on the device: seconds instead of a minute
        torch.manual_seed(0)
        parts["unet"] = UNet2DConditionModel(**SD15_UNET)
        parts["vae"] = AutoencoderKL(**SD15_VAE_CONFIG)
        parts["text_encoder"] = CLIPTextModel(
            CLIPTextConfig(
                hidden_size=768,
                intermediate_size=3072,
                num_attention_heads=12,
                num_hidden_layers=12,
                max_position_embeddings=77,
                vocab_size=max(49408, len(tok)),
                bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
            )
        )
    meta = {  # "family": SD-1.x defaults where the engine has per-family defaults
        "label": "SD-1.5-shaped random-weight fixture",
        "kind": "random",
        "native_size": 512,
        "family": "sd1",
    }
    return models._assemble("sd15-shaped-random", parts, meta, device, dt, "torch")


def build_model(plan: Plan, device, dtype_name: str):
    if plan.arch == "sd15":
        return sd15_model(device, dtype_name)
    from cds_desktop.engine.models import load_model

    return load_model("tiny-random", device=str(device), dtype=dtype_name, vae_backend="torch")


def dtype_label(dtype) -> str:
    return str(dtype).replace("torch.", "")


# ============================================================================ parts (child)
def part_machine(args, plan, device) -> dict:
    torch = _torch()
    import diffusers
    import transformers

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
    }
    try:
        import onnxruntime as ort

        info["onnxruntime"] = f"{ort.__version__} {ort.get_available_providers()}"
    except ImportError:
        info["onnxruntime"] = "not installed"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise Unavailable("this torch build sees no CUDA GPU (a CPU-only torch, or no driver)")
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            compute_capability=f"{props.major}.{props.minor}",
            cudnn=torch.backends.cudnn.version(),
            driver=_nvidia_smi(index, "driver_version"),
        )
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_smi(index: int, field: str) -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader", "-i", str(index)],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.strip()
        return out or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown (nvidia-smi not available)"


def part_step(args, plan, device) -> dict:
    import step_cost

    rows = {}
    for variant in ("published", "optimised"):
        ns = argparse.Namespace(
            device=str(device),
            arch=plan.arch,
            size=plan.size,
            dtype=args.dtype,
            steps=plan.step_steps,
            warmup=plan.step_warmup,
            variant=variant,
        )
        gc.collect()  # the previous variant's UNet is gone before this one starts
        if device.type == "cuda":
            _torch().cuda.empty_cache()
            _torch().cuda.reset_peak_memory_stats(device)
        rows[variant] = step_cost.run_variant(ns)
    pub, opt = rows["published"], rows["optimised"]
    return {
        "arch": plan.arch,
        "size": plan.size,
        "rows": [pub, opt],
        "speedup": pub["median_s"] / opt["median_s"],
        "memory_ratio": pub["peak_mib"] / opt["peak_mib"] if opt["peak_mib"] else None,
    }


def part_edit(args, plan, device) -> dict:
    from cds_desktop.engine import EditSettings, NumericalError, run_edit

    start = time.perf_counter()
    model = build_model(plan, device, args.dtype)
    sync(device)
    build_s = time.perf_counter() - start
    settings = EditSettings(steps=plan.edit_steps, working_size=plan.size, seed=0)
    reset_peak(device)
    start = time.perf_counter()
    out = {
        "arch": plan.arch,
        "size": plan.size,
        "steps": plan.edit_steps,
        "dtype": dtype_label(model.dtype),
        "preview_every": settings.preview_every,
        "build_s": build_s,
    }
    try:
        result, marks = drain(
            run_edit(model, sample_image(plan.size), PROMPTS[0], PROMPTS[1], None, settings), device
        )
    except NumericalError as exc:
        out.update(finite=False, error=str(exc), peak_mib=peak_mib(device))
        return out
    sync(device)
    end = time.perf_counter()
    steps_s = (marks[-1] - marks[0]) / max(1, len(marks) - 1)
    out.update(
        finite=True,
        wall_s=end - start,
        first_step_s=marks[0] - start,  # VAE encode, prompts, preview projection, step 1
        s_per_step=steps_s,  # steps 2..N, with the previews every preview_every steps
        final_s=end - marks[-1],  # VAE decode of the result and the composite
        peak_mib=peak_mib(device),
        image_shape=list(result.image.shape),
    )
    return out


def part_multi(args, plan, device) -> dict:
    import numpy as np

    from cds_desktop.engine import EditSettings, run_edit
    from cds_desktop.engine import editing as cds

    if not hasattr(cds, "run_edits"):
        raise Unavailable("this checkout's engine has no run_edits (shared-source multi-target)")
    model = build_model(plan, device, args.dtype)
    settings = EditSettings(steps=plan.multi_steps, working_size=plan.size, seed=0)
    image, targets = sample_image(plan.size), list(PROMPTS[1 : 1 + plan.k])
    warm_up = settings.replace(steps=2)
    drain(run_edit(model, image, PROMPTS[0], targets[0], None, warm_up), device)
    reset_peak(device)
    start = time.perf_counter()
    separate = [
        drain(run_edit(model, image, PROMPTS[0], t, None, settings), device)[0] for t in targets
    ]
    sync(device)
    separate_s, separate_peak = time.perf_counter() - start, peak_mib(device)
    reset_peak(device)
    start = time.perf_counter()
    shared, _ = drain(cds.run_edits(model, image, PROMPTS[0], targets, None, settings), device)
    sync(device)
    shared_s, shared_peak = time.perf_counter() - start, peak_mib(device)
    diffs = [
        int(np.abs(a.image.astype(np.int16) - b.image.astype(np.int16)).max())
        for a, b in zip(shared, separate, strict=True)
    ]
    return {
        "arch": plan.arch,
        "size": plan.size,
        "k": plan.k,
        "steps": plan.multi_steps,
        "dtype": dtype_label(model.dtype),
        "shared_s": shared_s,
        "separate_s": separate_s,
        "ratio": separate_s / shared_s,
        "shared_peak_mib": shared_peak,
        "separate_peak_mib": separate_peak,
        "max_pixel_diff": max(diffs),
        "pixel_diffs": diffs,
    }


def part_vae(args, plan, device) -> dict:
    torch = _torch()
    import vae as vae_bench
    from diffusers import AutoencoderKL

    from cds_desktop.engine.models import tiny_random_components
    from cds_desktop.engine.vae import create_backend

    def fresh_vae():
        if plan.arch == "sd15":
            torch.manual_seed(0)
            return AutoencoderKL(**vae_bench.SD15_VAE_CONFIG).eval()
        return tiny_random_components()["vae"]

    rows, notes, outputs = [], [], {}
    own_cache = "CDS_CACHE_DIR" not in os.environ
    with tempfile.TemporaryDirectory(prefix="cds-cuda-bench-") as tmp:
        if own_cache:
            os.environ["CDS_CACHE_DIR"] = tmp
        probe_size = plan.vae_sizes[0]
        g = torch.Generator().manual_seed(0)
        for kind in ("torch", "onnx"):
            why_not = vae_bench.onnx_status(device) if kind == "onnx" else None
            if why_not:
                notes.append(f"onnx not measured: {why_not}")
                continue
            start = time.perf_counter()
            backend = create_backend(fresh_vae(), kind, device, torch.float32, identity="random")
            setup_s = time.perf_counter() - start
            if backend.name != kind:
                notes.append(f"{kind} not measured: the engine fell back to {backend.name}")
                continue
            graphs = ""
            if kind == "onnx" and device.type == "cuda":
                fp16 = getattr(getattr(backend, "_decoder", None), "fallback_path", None)
                graphs = ", fp16 graphs" if fp16 is not None else ", fp32 graphs"
            notes.append(f"{kind}: set-up {setup_s:.1f} s (onnx: includes the export){graphs}")
            rows += [
                asdict(r)
                for r in vae_bench.bench_backend(
                    backend, device, list(plan.vae_sizes), plan.vae_repeats, 1
                )
            ]
            if "latent" not in outputs:  # one latent decoded by both backends
                side = probe_size // backend.scale_factor
                outputs["latent"] = torch.randn(
                    1, backend.latent_channels, side, side, generator=g
                ).to(device)
            outputs[kind] = backend.decode(outputs["latent"]).float().cpu()
            del backend
        if own_cache:
            del os.environ["CDS_CACHE_DIR"]
    if "torch" in outputs and "onnx" in outputs:
        diff = (outputs["torch"] - outputs["onnx"]).abs().max().item()
        notes.append(
            f"decode at {probe_size} px, onnx vs torch: max abs difference {diff:.2e} "
            "(images in [-1, 1])"
        )
    return {"arch": plan.arch, "rows": rows, "notes": notes}


def sdxl_config(full: bool) -> dict:
    from cds_desktop.engine.resources import resource_path

    path = resource_path("models", "configs", "sdxl") / "unet" / "config.json"
    if not path.is_file():
        raise Unavailable(f"no SDXL UNet config in this checkout ({path})")
    config = json.loads(path.read_text(encoding="utf-8"))
    if not full:  # same block types and added conditioning, a few thousandths of the size
        config.update(
            block_out_channels=[32, 64, 64],
            attention_head_dim=[1, 2, 2],
            transformer_layers_per_block=[1, 1, 1],
            layers_per_block=1,
            cross_attention_dim=64,
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=32 + 6 * 8,
            norm_num_groups=16,
            sample_size=8,
        )
    return config


def part_sdxl(args, plan, device) -> dict:
    torch = _torch()
    try:
        from cds_desktop.engine.conditioning import pack, pooled_width
    except ImportError:
        raise Unavailable(
            "this checkout's engine has no SDXL conditioning (cds_desktop/engine/conditioning.py)"
        ) from None
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from cds_desktop.engine import CDSObjective, EditSettings
    from cds_desktop.engine.models import pick_dtype

    dt = pick_dtype(device, args.dtype)
    config = {k: v for k, v in sdxl_config(plan.sdxl_full).items() if not k.startswith("_")}
    start = time.perf_counter()
    with torch.device(device):  # random init on the device (2.6 B parameters at full size)
        torch.manual_seed(0)
        unet = UNet2DConditionModel.from_config(config)
    unet = unet.to(dtype=dt).eval()
    unet.requires_grad_(False)
    sync(device)
    build_s = time.perf_counter() - start
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(device)

    side = plan.sdxl_size // 8
    width = unet.config.cross_attention_dim
    emb = [pack(randn(1, 77, width), randn(1, pooled_width(unet)), 8).to(dt) for _ in range(3)]
    z_src = randn(1, 4, side, side)
    z_trg = z_src + 0.1 * randn(1, 4, side, side)
    objective = CDSObjective(unet, scheduler, EditSettings(w_cut=3.0))
    patches = torch.Generator().manual_seed(1)
    reset_peak(device)
    times, finite = [], True
    with objective.session():
        for step in range(1 + plan.sdxl_steps):  # the first step is a warm-up
            noise = randn(1, 4, side, side)
            sync(device)
            t0 = time.perf_counter()
            grad = objective.step_gradient(z_src, z_trg, 100 + 250 * step, noise, *emb, patches)
            sync(device)
            if step:
                times.append(time.perf_counter() - t0)
            finite = finite and bool(torch.isfinite(grad).all())
    return {
        "full_size": plan.sdxl_full,
        "size": plan.sdxl_size,
        "dtype": dtype_label(dt),
        "params_b": sum(p.numel() for p in unet.parameters()) / 1e9,
        "build_s": build_s,
        "median_s": statistics.median(times),
        "steps": len(times),
        "peak_mib": peak_mib(device),
        "finite": finite,
    }


def part_precision(args, plan, device) -> dict:
    import copy

    torch = _torch()
    from step_cost import build_unet

    from cds_desktop.engine import CDSObjective, EditSettings
    from cds_desktop.engine.models import pick_dtype

    low = pick_dtype(device, args.dtype)
    if low == torch.float32:
        raise Unavailable("--dtype is fp32: nothing to compare against")
    unet32, scheduler, vae_factor, dim = build_unet(plan.arch, device, torch.float32)
    unet_low = copy.deepcopy(unet32).to(dtype=low)
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(device)

    side = plan.size // vae_factor
    z_src = randn(1, 4, side, side)
    emb = [randn(1, 77, dim) for _ in range(3)]
    settings = EditSettings(w_cut=3.0)
    z = {torch.float32: z_src.clone(), low: z_src.clone()}
    rows = []
    for t in plan.precision_ts:
        noise = randn(1, 4, side, side)
        grads = {}
        for dt, unet in ((torch.float32, unet32), (low, unet_low)):
            objective = CDSObjective(unet, scheduler, settings)
            patches = torch.Generator().manual_seed(t)  # the same patch positions for both
            grads[dt] = objective.gradient(
                z_src, z[dt], t, noise, *(e.to(dt) for e in emb), patches
            ).float()
        ref, other = grads[torch.float32], grads[low]
        rows.append(
            {
                "t": t,
                "rel_l2": ((other - ref).norm() / ref.norm()).item(),
                "cosine": torch.nn.functional.cosine_similarity(
                    other.flatten(), ref.flatten(), dim=0
                ).item(),
                "finite": bool(torch.isfinite(other).all()),
                "grad_norm_fp32": ref.norm().item(),
            }
        )
        for dt in z:
            z[dt] = z[dt] - settings.lr * grads[dt]
    move32, move_low = z[torch.float32] - z_src, z[low] - z_src
    return {
        "arch": plan.arch,
        "size": plan.size,
        "dtype": dtype_label(low),
        "rows": rows,
        "displacement_rel_l2": ((move_low - move32).norm() / move32.norm()).item(),
    }


def part_seed(args, plan, device) -> dict:
    import numpy as np

    from cds_desktop.engine import EditSettings, edit
    from cds_desktop.engine import cds as cds_engine
    from cds_desktop.engine.models import load_model

    settings = EditSettings(steps=plan.seed_steps, working_size=32, seed=7, preview_every=0)
    image = sample_image(48, seed=3)
    results = {}
    for where in ("cpu", str(device)):
        model = load_model("tiny-random", device=where, dtype="fp32", vae_backend="torch")
        results[where] = edit(model, image, PROMPTS[0], PROMPTS[1], None, settings).image
    a, b = (results[w].astype(np.int16) for w in ("cpu", str(device)))
    diff = np.abs(a - b)
    return {
        "devices": ["cpu", str(device)],
        "steps": plan.seed_steps,
        "max_pixel_diff": int(diff.max()),
        "mean_pixel_diff": float(diff.mean()),
        "cpu_draws": hasattr(cds_engine, "Draws"),
    }


def part_tests(args, plan, device) -> dict:
    env = dict(
        os.environ, CDS_TEST_DEVICE=str(device), HF_HUB_OFFLINE="1", QT_QPA_PLATFORM="offscreen"
    )
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "pytest", "-rfE", "-p", "no:cacheprovider", *plan.tests]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout - 5
        )
        text, returncode = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        text, returncode = out + f"\n(stopped after {args.timeout - 5:.0f} s)", None
    (args.out / "logs" / "tests_pytest.log").write_text(text, encoding="utf-8")
    counts = {k: 0 for k in ("passed", "failed", "skipped", "error", "errors", "xfailed")}
    summary = [ln for ln in text.splitlines() if re.search(r"\d+ (passed|failed|error)", ln)]
    if not summary:  # pytest missing, or stopped before its summary
        last = [ln for ln in text.splitlines() if ln.strip()][-1:] or ["no output"]
        raise RuntimeError(f"the test run gave no summary: {last[0][:300]}")
    for n, word in re.findall(r"(\d+) (\w+)", summary[-1] if summary else ""):
        if word in counts:
            counts[word] += int(n)
    header = re.search(r"cds test device: (\S+)", text)
    return {
        "command": " ".join(["CDS_TEST_DEVICE=" + str(device), "python", *cmd[1:]]),
        "returncode": returncode,
        "device_seen": header.group(1) if header else None,
        "passed": counts["passed"],
        "failed": counts["failed"],
        "skipped": counts["skipped"],
        "errors": counts["error"] + counts["errors"],
        "seconds": time.perf_counter() - start,
        "not_passed": [ln for ln in text.splitlines() if ln.startswith(("FAILED", "ERROR"))][:30],
    }


PART_FUNCS = {
    "machine": part_machine,
    "step": part_step,
    "edit": part_edit,
    "multi": part_multi,
    "vae": part_vae,
    "sdxl": part_sdxl,
    "precision": part_precision,
    "seed": part_seed,
    "tests": part_tests,
}


def run_parts(args) -> int:
    """Child process: run the named parts in order, one result file each."""
    torch = _torch()
    plan = QUICK if args.quick else FULL
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.parts.split(","):
        start = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            result = {"status": "ok", **PART_FUNCS[name](args, plan, device)}
        except Unavailable as exc:
            result = {"status": "not available", "reason": str(exc)}
        except Exception as exc:  # noqa: BLE001 - reported in the table, the run goes on
            traceback.print_exc()
            oom = type(exc).__name__ == "OutOfMemoryError"
            result = {
                "status": "out of memory" if oom else "failed",
                "reason": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
            }
        result["seconds"] = time.perf_counter() - start
        (args.out / "parts" / f"{name}.json").write_text(json.dumps(result, indent=1))
        print(f"== {name}: {result['status']} in {result['seconds']:.1f} s", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return 0


# ============================================================================ parent
def orchestrate(args) -> int:
    plan = QUICK if args.quick else FULL
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    (args.out / "parts").mkdir(parents=True, exist_ok=True)
    wanted = (
        [p for p, _ in PARTS if p in args.only.split(",")] if args.only else [p for p, _ in PARTS]
    )
    caps = dict(PARTS)
    # full size: one process per part; quick: the torch parts share one process (start-up
    # costs more than the parts), the test suite runs in its own pytest process either way
    if args.quick:
        groups = [[p for p in wanted if p != "tests"], [p for p in wanted if p == "tests"]]
    else:
        groups = [[p] for p in wanted]
    groups = [g for g in groups if g]
    deadline = time.monotonic() + args.budget
    print(
        f"CUDA benchmark report: device {args.device}, {'quick smoke run' if args.quick else 'full size'}, "
        f"budget {args.budget:.0f} s, results in {args.out}",
        flush=True,
    )
    results: dict[str, dict] = {}
    for i, group in enumerate(groups):
        later = [p for g in groups[i + 1 :] for p in g]  # keep their minimum time free
        left = deadline - time.monotonic() - sum(RESERVE.get(p, 20) for p in later)
        cap = sum(caps[p] for p in group) * (2 if args.quick else 1)
        timeout = min(cap, left)
        if timeout < 10:
            for p in group:
                results[p] = {"status": "not run", "reason": "the time budget was spent"}
            continue
        name = "+".join(group)
        log = args.out / "logs" / f"{group[0] if len(group) == 1 else 'parts'}.log"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--parts", ",".join(group),
               "--device", args.device, "--dtype", args.dtype, "--out", str(args.out),
               "--timeout", f"{timeout:.0f}"]  # fmt: skip
        cmd += ["--quick"] if args.quick else []
        cmd += ["--threads", str(args.threads)] if args.threads else []
        for p in group:
            (args.out / "parts" / f"{p}.json").unlink(missing_ok=True)
        start = time.monotonic()
        print(f"-- {name} (up to {timeout:.0f} s)", flush=True)
        with open(log, "w", encoding="utf-8") as fh:
            rc = run_with_timeout(cmd, fh, timeout)
        for p in group:
            f = args.out / "parts" / f"{p}.json"
            if f.is_file():
                results[p] = json.loads(f.read_text())
            elif rc is None:
                results[p] = {"status": "timed out", "reason": f"stopped after {timeout:.0f} s"}
            else:
                results[p] = {"status": "failed", "reason": f"exit status {rc}: {_tail(log)}"}
            print(
                f"   {p}: {results[p]['status']} ({time.monotonic() - start:.0f} s so far)",
                flush=True,
            )
        if group == ["machine"] and results["machine"]["status"] != "ok":
            print(f"error: {results['machine'].get('reason')}", file=sys.stderr)
            return 2
    report = render(results, plan, args)
    print("\n" + report)
    (args.out / "results.md").write_text(report + "\n", encoding="utf-8")
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "device": args.device,
                "dtype": args.dtype,
                "quick": args.quick,
                "plan": asdict(plan),
                "results": results,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    bad = [p for p, r in results.items() if r["status"] not in ("ok", "not available")]
    if bad:
        print(f"parts that did not complete: {', '.join(bad)} (logs in {args.out / 'logs'})")
    return 1 if bad else 0


def run_with_timeout(cmd: list[str], log, timeout: float) -> int | None:
    """Run ``cmd`` with output to ``log``; None if it had to be stopped after ``timeout`` s.
    The child runs in its own process group, so what it started (pytest) is stopped too."""
    posix = hasattr(os, "killpg")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=posix)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        if posix:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait()
        return None


def _tail(log: Path) -> str:
    lines = [
        ln for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()
    ]
    return lines[-1][:300] if lines else "no output"


# ============================================================================ tables
def render(results: dict, plan: Plan, args) -> str:
    out: list[str] = []
    m = results.get("machine", {})
    mem = "peak GPU MiB" if args.device.startswith("cuda") else "peak RSS MiB"
    title = (
        "quick smoke run (tiny fixtures: the numbers mean nothing)" if args.quick else "full size"
    )
    out.append(f"# CUDA benchmark report: {title}, device {args.device}, dtype {args.dtype}")
    if m.get("status") == "ok":
        gpu = (
            f"{m['gpu']} ({m['gpu_memory_gib']} GiB, compute {m['compute_capability']}), "
            f"driver {m['driver']}, CUDA {m['torch_cuda']}, cuDNN {m['cudnn']}; "
            if "gpu" in m
            else "no GPU; "
        )
        out.append(
            f"machine: {gpu}CPU {m['cpu']} ({m['cpu_cores']} logical cores); "
            f"Python {m['python']}, torch {m['torch']}, diffusers {m['diffusers']}, "
            f"transformers {m['transformers']}, onnxruntime {m['onnxruntime']}"
        )
    out.append(
        "All models are random-weight fixtures of the real architectures; "
        "timing and memory do not depend on the weights."
    )

    def section(name: str, heading: str, body) -> None:
        r = results.get(name)
        if r is None:
            return
        out.append(f"\n## {heading}\n")
        if r["status"] != "ok":
            out.append(f"{r['status']}: {r.get('reason', '')}")
            return
        body(r)

    def step(r):
        out.append(
            f"{r['arch']} UNet, {r['size']} px, {r['rows'][0]['dtype']}; median of "
            f"{plan.step_steps} steps after {plan.step_warmup} warm-up steps\n"
        )
        out.append(
            f"| loop structure | s/step | UNet fwd samples/step | UNet bwd samples/step | {mem} | growth MiB |"
        )
        out.append("|---|---:|---:|---:|---:|---:|")
        for row in r["rows"]:
            out.append(
                f"| {row['variant']} | {row['median_s']:.4f} | {row['fwd_per_step']:.0f} | "
                f"{row['bwd_per_step']:.0f} | {row['peak_mib']:.0f} | {row['growth_mib']:+.1f} |"
            )
        ratio = (
            f", memory published / optimised {r['memory_ratio']:.2f}x"
            if r.get("memory_ratio")
            else ""
        )
        out.append(f"\nspeed-up (published / optimised): {r['speedup']:.2f}x{ratio}")

    def edit(r):
        out.append(
            f"{r['arch']} fixture, {r['size']} px, UNet {r['dtype']} (VAE fp32), "
            f"{r['steps']} steps, a VAE preview every {r['preview_every']} steps; "
            f"model built in {r['build_s']:.1f} s (not counted)\n"
        )
        if not r["finite"]:
            out.append(f"the edit did not stay finite: {r['error']} ({mem} {r['peak_mib']:.0f})")
            return
        out.append(
            f"| wall s | to step 1 s (VAE encode, prompts, step 1) | s/step (steps 2..N) "
            f"| final decode s | {mem} | finite |"
        )
        out.append("|---:|---:|---:|---:|---:|---|")
        out.append(
            f"| {r['wall_s']:.2f} | {r['first_step_s']:.2f} | {r['s_per_step']:.4f} | "
            f"{r['final_s']:.2f} | {r['peak_mib']:.0f} | yes |"
        )

    def multi(r):
        out.append(
            f"{r['arch']} fixture, {r['size']} px, UNet {r['dtype']}, {r['steps']} steps per "
            f"edit, K = {r['k']} targets, the same seed\n"
        )
        out.append(f"| run | wall s | s per target | {mem} |")
        out.append("|---|---:|---:|---:|")
        out.append(
            f"| {r['k']} separate edits | {r['separate_s']:.2f} | {r['separate_s'] / r['k']:.2f} "
            f"| {r['separate_peak_mib']:.0f} |"
        )
        out.append(
            f"| one shared run (run_edits) | {r['shared_s']:.2f} | {r['shared_s'] / r['k']:.2f} "
            f"| {r['shared_peak_mib']:.0f} |"
        )
        out.append(
            f"\nseparate / shared: {r['ratio']:.2f}x; largest pixel difference shared vs "
            f"separate: {r['max_pixel_diff']} (per target {r['pixel_diffs']})"
        )

    def vae(r):
        label = "SD-1.5-shaped" if r["arch"] == "sd15" else "tiny fixture"
        out.append(
            f"{label} VAE (fp32 weights), median of {plan.vae_repeats} runs after 1 warm-up\n"
        )
        out.append(
            f"| backend | op | size | median s | runs | {'peak GPU MiB above start' if args.device.startswith('cuda') else 'peak RSS delta MiB'} |"
        )
        out.append("|---|---|---|---:|---:|---:|")
        for row in r["rows"]:
            peak = "n/a" if row["peak_mb"] is None else f"{row['peak_mb']:.0f}"
            out.append(
                f"| {row['backend']} | {row['op']} | {row['size']}² | {row['median_s']:.3f} "
                f"| {row['runs']} | {peak} |"
            )
        for note in r["notes"]:
            out.append(f"- {note}")

    def sdxl(r):
        label = "full-size SDXL-shaped" if r["full_size"] else "reduced SDXL-shaped (smoke run)"
        out.append(
            f"| UNet | params | size | dtype | s/step (median of {r['steps']}) | {mem} | finite |"
        )
        out.append("|---|---:|---|---|---:|---:|---|")
        out.append(
            f"| {label} | {r['params_b']:.2f} B | {r['size']}² | {r['dtype']} | "
            f"{r['median_s']:.3f} | {r['peak_mib']:.0f} | {'yes' if r['finite'] else 'NO'} |"
        )

    def precision(r):
        out.append(
            f"{r['arch']} UNet at {r['size']} px: the same inputs and patch positions in "
            f"fp32 and {r['dtype']}, one SGD step (lr 0.1) per row\n"
        )
        out.append(
            f"| step | t | gradient rel. L2 diff | cosine | {r['dtype']} finite | |g| fp32 |"
        )
        out.append("|---:|---:|---:|---:|---|---:|")
        for i, row in enumerate(r["rows"], 1):
            out.append(
                f"| {i} | {row['t']} | {row['rel_l2']:.2e} | {row['cosine']:.5f} | "
                f"{'yes' if row['finite'] else 'NO'} | {row['grad_norm_fp32']:.3g} |"
            )
        out.append(
            f"\nedit displacement after {len(r['rows'])} steps, {r['dtype']} vs fp32: "
            f"rel. L2 diff {r['displacement_rel_l2']:.2e}"
        )
        e = results.get("edit", {})
        if e.get("status") == "ok":
            out.append(
                f"\nthe {e['steps']}-step {e['dtype']} edit stayed finite: "
                f"{'yes' if e['finite'] else 'NO'}"
            )

    def seed(r):
        out.append(
            f"tiny fixture, fp32, seed 7, {r['steps']} steps, on {r['devices'][0]} and "
            f"{r['devices'][1]}\n"
        )
        out.append(
            "| max pixel diff | mean pixel diff | engine draws t/noise/patches on CPU generators |"
        )
        out.append("|---:|---:|---|")
        out.append(
            f"| {r['max_pixel_diff']} | {r['mean_pixel_diff']:.3f} | {'yes' if r['cpu_draws'] else 'no'} |"
        )

    def tests(r):
        out.append(f"`{r['command']}` (device seen by the fixtures: {r['device_seen']})\n")
        out.append("| passed | failed | errors | skipped | s |")
        out.append("|---:|---:|---:|---:|---:|")
        out.append(
            f"| {r['passed']} | {r['failed']} | {r['errors']} | {r['skipped']} | {r['seconds']:.0f} |"
        )
        for line in r["not_passed"]:
            out.append(f"- {line}")

    section("step", "One CDS step: shipped loop vs the published structure", step)
    section("edit", "A whole edit, VAE included", edit)
    section("multi", "K targets: one shared run vs separate runs", multi)
    section("vae", "VAE backends: torch vs ONNX (onnxruntime)", vae)
    section("sdxl", "SDXL-shaped UNet: one CDS step", sdxl)
    section("precision", "fp16 against fp32", precision)
    section("seed", "The same seeded edit on the CPU and on the device", seed)
    section("tests", "Engine tests on the device", tests)
    timing = ", ".join(f"{p} {r['seconds']:.0f} s" for p, r in results.items() if "seconds" in r)
    out.append(f"\npart run times: {timing}")
    return "\n".join(out)


# ============================================================================ main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (with --quick)")
    p.add_argument(
        "--dtype",
        default="fp16",
        choices=["fp16", "bf16", "fp32"],
        help="UNet precision of the step/edit/multi/sdxl parts (VAE stays fp32)",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, every part")
    p.add_argument("--out", type=Path, help="results folder (default benchmarks/out/cuda-<time>)")
    p.add_argument("--budget", type=float, default=570.0, help="seconds for the whole run")
    p.add_argument(
        "--only",
        help="comma-separated parts to run (default all): " + ",".join(n for n, _ in PARTS),
    )
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    p.add_argument("--parts", help=argparse.SUPPRESS)  # child mode: these parts
    p.add_argument("--timeout", type=float, default=600.0, help=argparse.SUPPRESS)  # child's
    args = p.parse_args(argv)
    if args.out is None:
        args.out = ROOT / "benchmarks" / "out" / time.strftime("cuda-%Y%m%d-%H%M%S")
    args.out = args.out.resolve()
    if args.only:
        unknown = set(args.only.split(",")) - dict(PARTS).keys()
        if unknown:
            p.error(f"unknown part(s) {', '.join(sorted(unknown))}")
    if args.parts:
        return run_parts(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
