"""benchmarks/cuda_bench.py: the quick smoke run on the CPU goes through every part (tiny
fixtures), and a missing GPU is one clear line. The numbers themselves are not tested here
(speed is measured by the script, never by tests)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "cuda_bench.py"
ALL_PARTS = ("machine", "step", "edit", "multi", "vae", "sdxl", "precision", "seed", "tests")


def _run(*args: str, timeout: float = 500) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _engine_has(module: str, name: str | None = None) -> bool:
    if importlib.util.find_spec(module) is None:
        return False
    return name is None or hasattr(importlib.import_module(module), name)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cuda-bench")
    proc = _run("--device", "cpu", "--quick", "--out", str(out))
    data = (
        json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else None
    )
    return proc, out, data


def test_quick_run_completes_every_part(quick_run):
    proc, out, data = quick_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert data is not None, "results.json was not written"
    results = data["results"]
    assert set(results) == set(ALL_PARTS)
    expected_unavailable = set()
    if not _engine_has("cds_desktop.engine.editing", "run_edits"):
        expected_unavailable.add("multi")
    if not _engine_has("cds_desktop.engine.conditioning"):
        expected_unavailable.add("sdxl")
    for part, result in results.items():
        want = "not available" if part in expected_unavailable else "ok"
        assert result["status"] == want, f"{part}: {result}"
    report = (out / "results.md").read_text()
    assert report.strip() in proc.stdout, "results.md is the report printed on stdout"
    for heading in (
        "One CDS step",
        "A whole edit",
        "K targets",
        "VAE backends",
        "SDXL-shaped",
        "fp16 against fp32",
        "The same seeded edit",
        "Engine tests on the device",
    ):
        assert f"## {heading}" in report, heading
    assert (out / "logs" / "tests_pytest.log").is_file()


def test_quick_run_measures_what_each_part_claims(quick_run):
    _, _, data = quick_run
    r = data["results"]
    published, optimised = r["step"]["rows"]
    # UNet samples per step: published 4 no-grad + 2 grad; shipped 3 no-grad + 1 grad
    assert (published["fwd_per_step"], published["bwd_per_step"]) == (6, 2)
    assert (optimised["fwd_per_step"], optimised["bwd_per_step"]) == (4, 1)
    edit = r["edit"]
    assert edit["finite"] and edit["steps"] == 3 and edit["wall_s"] > 0
    assert edit["image_shape"] == [32, 32, 4]
    vae_rows = {(row["backend"], row["op"]) for row in r["vae"]["rows"]}
    assert {("torch", "encode"), ("torch", "decode")} <= vae_rows
    if importlib.util.find_spec("onnxruntime") is not None:
        assert {("onnx", "encode"), ("onnx", "decode")} <= vae_rows
        assert any("onnx vs torch" in note for note in r["vae"]["notes"])
    rows = r["precision"]["rows"]
    assert len(rows) == 2 and all(row["finite"] for row in rows)
    assert all(row["cosine"] > 0.9 for row in rows), rows  # fp16 follows fp32's direction
    assert r["seed"]["max_pixel_diff"] == 0  # CPU against CPU: the same seeded edit
    tests = r["tests"]
    assert tests["device_seen"] == "cpu"
    assert tests["passed"] >= 1 and tests["failed"] == 0 and tests["errors"] == 0
    if r["multi"]["status"] == "ok":
        assert r["multi"]["k"] == 4 and len(r["multi"]["pixel_diffs"]) == 4
    if r["sdxl"]["status"] == "ok":
        assert r["sdxl"]["finite"] and not r["sdxl"]["full_size"]


def test_missing_gpu_is_one_clear_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    proc = _run("--device", "cuda", "--only", "machine", "--out", str(tmp_path), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: this torch build sees no CUDA GPU (a CPU-only torch, or no driver)"
    ]
    assert "Traceback" not in proc.stdout + proc.stderr
