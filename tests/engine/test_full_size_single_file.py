"""cds-edit on a full-size SD-1.5 single file (random weights, original key layout), offline,
with an empty Hugging Face cache: everything it needs besides the file ships with the project."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from ldm_layout import to_single_file
from PIL import Image
from safetensors.torch import save_file

from cds_desktop.engine.resources import resource_path

pytestmark = pytest.mark.slow


def _write_sd15_file(path):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = resource_path("models", "configs", "sd1")
    torch.manual_seed(0)
    parts = {
        "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet")),
        "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae")),
        "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder")),
    }
    state = {k: v.to(torch.float16).contiguous() for k, v in to_single_file(parts, "sd1").items()}
    n_unet = sum(p.numel() for p in parts["unet"].parameters())
    del parts
    gc.collect()
    save_file(state, str(path))
    return n_unet


def test_cds_edit_on_a_full_size_sd15_single_file_offline(tmp_path):
    model = tmp_path / "v1-5-random-emaonly.safetensors"
    assert _write_sd15_file(model) > 800_000_000  # the real 860M-parameter UNet
    gc.collect()
    img = np.full((96, 128, 3), 210, np.uint8)
    img[20:70, 30:90] = (200, 40, 40)
    Image.fromarray(img).save(tmp_path / "in.png")
    hf_home = tmp_path / "hf-home"
    hf_home.mkdir()
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        HF_HOME=str(hf_home),
        CDS_CACHE_DIR=str(tmp_path / "cache"),
        OMP_NUM_THREADS="2",
    )
    out = tmp_path / "out.png"
    cmd = [
        sys.executable,
        "-m",
        "cds_desktop.cli",
        str(tmp_path / "in.png"),
        "--model",
        str(model),
        "--source",
        "a red square",
        "--target",
        "a blue square",
        "--steps",
        "1",
        "--working-size",
        "128",
        "--vae",
        "torch",
        "--device",
        "cpu",
        "-q",
        "-o",
        str(out),
    ]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert Image.open(out).size == (128, 96)
    assert not any(hf_home.rglob("*")), "something was fetched or cached from the Hub"
