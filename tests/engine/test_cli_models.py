"""cds-edit with broken models, paths and devices: one clear error line, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from model_fixtures import save_folder, tiny_family
from PIL import Image
from safetensors.torch import save_file

from cds_desktop import cli
from cds_desktop.engine.tokenizer_files import gpt2_byte_table


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    sd1 = save_folder(tiny_family("sd1"), root / "sd1")
    sd2 = tiny_family("sd2")
    return sd1, sd2


def _variant(good, tmp_path, name, change):
    folder = tmp_path / name
    shutil.copytree(good[0], folder)
    change(folder, good)
    return str(folder)


def _edit_json(path, **values):
    data = json.loads(path.read_text())
    data.update(values)
    path.write_text(json.dumps(data))


def _tiny_vocab(folder, _good):
    vocab = {c: i for i, c in enumerate(gpt2_byte_table().values())}
    vocab.update({"<|startoftext|>": 256, "<|endoftext|>": 257})
    (folder / "tokenizer" / "tokenizer.json").unlink(missing_ok=True)
    (folder / "tokenizer" / "vocab.json").write_text(json.dumps(vocab))
    (folder / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")


def _wrong_width(folder, good):
    shutil.rmtree(folder / "text_encoder")
    good[1]["text_encoder"].save_pretrained(folder / "text_encoder")  # 48 wide; the UNet wants 32


BROKEN = {
    "no-tokenizer": (
        lambda f, g: shutil.rmtree(f / "tokenizer"),
        ["tokenizer is missing", "hf download"],
    ),
    "empty-tokenizer": (
        lambda f, g: [
            (f / "tokenizer" / n).unlink(missing_ok=True)
            for n in ("vocab.json", "merges.txt", "tokenizer.json")
        ],
        ["tokenizer/ has no vocab.json and merges.txt", "hf download"],
    ),
    "small-vocab": (_tiny_vocab, ["tokenizer: vocabulary too small (258 tokens"]),
    "wrong-width": (
        _wrong_width,
        ["wrong text-embedding width", "text_encoder give 48", "expects 32"],
    ),
    "addition-embed": (
        lambda f, g: _edit_json(f / "unet" / "config.json", addition_embed_type="image"),
        ["unet/config.json: addition_embed_type 'image' is not supported"],
    ),
    "prediction": (
        lambda f, g: _edit_json(f / "scheduler" / "scheduler_config.json", prediction_type="flow"),
        ["prediction_type 'flow' is not supported"],
    ),
}


@pytest.fixture()
def image(tmp_path):
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(tmp_path / "in.png")
    return tmp_path / "in.png"


def _expect_one_line(argv, capsys, tmp_path, *fragments):
    out = tmp_path / "out.png"
    code = cli.main(
        [
            *argv,
            "--source",
            "a red square",
            "--target",
            "a blue square",
            "--steps",
            "1",
            "--vae",
            "torch",
            "--device",
            "cpu",
            "-q",
            "-o",
            str(out),
        ]
    )
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.startswith("cds-edit: error:")]
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert not lines[0].rstrip().endswith(".."), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    return lines[0]


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_model_folder(good, tmp_path, image, capsys, case):
    change, fragments = BROKEN[case]
    folder = _variant(good, tmp_path, case, change)
    line = _expect_one_line([str(image), "--model", folder], capsys, tmp_path, *fragments)
    assert folder in line  # names the model at fault


def test_missing_paths_are_not_hub_ids(tmp_path, image, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    for spec in ("models/sd15", "./sd15", "no/such/folder/x", "missing.safetensors"):
        line = _expect_one_line([str(image), "--model", spec], capsys, tmp_path, "does not exist")
        assert "Hugging Face" not in line


def test_uncached_hub_id_offline_suggests_hf_download(tmp_path, image, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    line = _expect_one_line(
        [str(image), "--model", "someone/no-such-model"],
        capsys,
        tmp_path,
        "offline mode",
        "`hf download someone/no-such-model`",
    )
    assert "huggingface-cli" not in line


def test_unsupported_single_file_family(tmp_path, image, capsys):
    path = tmp_path / "sd3.safetensors"
    save_file(
        {"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight": torch.zeros(2, 2)},
        str(path),
    )
    _expect_one_line(
        [str(image), "--model", str(path)],
        capsys,
        tmp_path,
        str(path),
        "Stable Diffusion 3",
        "supported families",
    )


def test_truncated_single_file(tmp_path, image, capsys):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a":')
    _expect_one_line(
        [str(image), "--model", str(path)], capsys, tmp_path, str(path), "not a readable"
    )


@pytest.mark.parametrize(
    "device, cuda_count, fragment",
    [
        ("mps", 0, "MPS backend is not available"),
        ("cuda", 0, "sees no CUDA GPU"),
        ("cuda:3", 2, "there is no such GPU; this machine has 2 (cuda:0 to cuda:1)"),
        ("tpu", 0, "expected auto | cpu | cuda | cuda:N | mps"),
    ],
)
def test_unavailable_devices(tmp_path, image, capsys, monkeypatch, device, cuda_count, fragment):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda_count)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    out = tmp_path / "out.png"
    code = cli.main(
        [
            str(image),
            "--model",
            "tiny-random",
            "--source",
            "a",
            "--target",
            "b",
            "--device",
            device,
            "-q",
            "-o",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("cds-edit: error:")]
    assert code == 2 and len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in err and not out.exists()


def test_family_flag_reaches_the_loader(good, tmp_path, image, capsys):
    _expect_one_line(
        [str(image), "--model", str(good[0]), "--family", "sdxl"],
        capsys,
        tmp_path,
        "--family sdxl was asked for",
        "SD-1.x",
    )


def test_cached_hub_id_loads_offline(good, tmp_path, image):
    """A repo id resolves from the Hugging Face cache with HF_HUB_OFFLINE=1 (subprocess: the hub
    library reads HF_HOME when imported)."""
    import os
    import subprocess
    import sys

    snapshot = tmp_path / "hf" / "hub" / "models--someone--tiny-sd" / "snapshots" / ("0" * 40)
    shutil.copytree(good[0], snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    out = tmp_path / "out.png"
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "cds_desktop.cli",
            str(image),
            "--model",
            "someone/tiny-sd",
            "--source",
            "a red square",
            "--target",
            "a blue square",
            "--steps",
            "1",
            "--vae",
            "torch",
            "--device",
            "cpu",
            "-o",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "someone/tiny-sd (Hugging Face)" in run.stdout and out.is_file()
