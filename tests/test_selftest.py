"""`cds-desktop --self-test`: its checks catch wrong results (also under python -O), and the
whole self-test passes on the tiny fixture."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cds_desktop import selftest


def _edited():
    img, mask = selftest._scene()
    out = img.copy()
    out[mask > 0] = 7
    return img, mask, out


def test_a_good_edit_passes():
    img, mask, out = _edited()
    selftest._check_edit(out, img, mask)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda img, mask, out: out.__setitem__((0, 0), 1), "outside the mask changed"),
        (lambda img, mask, out: out.__setitem__(mask > 0, img[mask > 0]), "changed no pixel"),
    ],
)
def test_wrong_results_fail(damage, message):
    img, mask, out = _edited()
    damage(img, mask, out)
    with pytest.raises(selftest.CheckFailed, match=message):
        selftest._check_edit(out, img, mask)


def test_a_result_of_another_size_fails():
    img, mask, out = _edited()
    with pytest.raises(selftest.CheckFailed, match="result"):
        selftest._check_edit(out[:, :10], img, mask)


def test_checks_still_run_under_python_O():
    code = (
        "import numpy as np; from cds_desktop.selftest import _check_edit, _scene, CheckFailed\n"
        "img, mask = _scene()\n"
        "try:\n    _check_edit(img.copy(), img, mask)\nexcept CheckFailed:\n    print('caught')\n"
    )
    run = subprocess.run(
        [sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert run.stdout.strip() == "caught", run.stderr


def test_the_self_test_passes_on_the_tiny_fixture(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CDS_CACHE_DIR", str(tmp_path / "cache"))
    assert selftest.main(["--model", "tiny-random"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("cds-desktop self-test PASS"), line
    assert all(part in line for part in ("engine+torch-vae ok", "engine+onnx-vae ok", "bridge ok"))
