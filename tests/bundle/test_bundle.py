"""Slow: build the PyInstaller bundle and run its self-test with no Python on PATH.

Run with `CDS_SLOW=1 python3 tools/test.py -m slow tests/bundle` (about 10-15 min on
2 cores; `.ci/run` runs it, the default `tools/test.py` does not).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("CDS_SLOW") != "1", reason="bundle build is slow; set CDS_SLOW=1"
    ),
]


def test_bundle_builds_and_self_test_passes_without_python(tmp_path):
    subprocess.run([sys.executable, "tools/build_bundle.py"], cwd=ROOT, check=True, timeout=3600)
    exe = ROOT / "dist" / "cds-desktop" / "cds-desktop"
    assert exe.is_file() and os.access(exe, os.X_OK)
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {
        "PATH": str(empty),
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    run = subprocess.run(
        [str(exe), "--self-test"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "self-test PASS" in run.stdout
    internal = ROOT / "dist" / "cds-desktop" / "_internal"
    ours = {p.name for p in (ROOT / "tests").rglob("test_*.py")}
    assert not [p for p in internal.rglob("test_*.py") if p.name in ours], (
        "our tests must not be bundled"
    )
    for dev_tool in ("pytest", "hypothesis", "importlinter", "matplotlib"):
        assert not (internal / dev_tool).exists(), f"{dev_tool} must not be bundled"
