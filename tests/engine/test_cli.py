"""cds-edit: outputs, and one clear error line (no traceback, no partial file) for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cds_desktop import cli

BASE = [
    "--source",
    "a red square",
    "--model",
    "tiny-random",
    "--steps",
    "2",
    "--working-size",
    "32",
    "-q",
]


@pytest.fixture()
def files(tmp_path):
    img = np.full((24, 32, 3), 220, np.uint8)
    img[6:18, 8:20] = (200, 30, 30)
    Image.fromarray(img).save(tmp_path / "in.png")
    mask = np.zeros((24, 32), np.uint8)
    mask[4:20, 6:22] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    Image.fromarray(mask[:10]).save(tmp_path / "small_mask.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    return tmp_path


def _run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_one_output_per_target(files, capsys):
    out = files / "o.png"
    code, stdout, err = _run(
        [
            str(files / "in.png"),
            *BASE,
            "--target",
            "a blue square",
            "--target",
            "a pig",
            "--mask",
            str(files / "mask.png"),
            "-o",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    written = sorted(p.name for p in files.glob("o-*.png"))
    assert written == ["o-1-a-blue-square.png", "o-2-a-pig.png"]
    src = np.array(Image.open(files / "in.png"))
    res = np.array(Image.open(files / written[0]))
    mask = np.array(Image.open(files / "mask.png")) > 0
    assert res.shape == src.shape
    assert np.array_equal(res[~mask], src[~mask])


def test_several_targets_are_one_shared_run_matching_single_runs(
    files, capsys, monkeypatch, tiny_model
):
    import copy
    import dataclasses

    model64 = dataclasses.replace(
        tiny_model, unet=copy.deepcopy(tiny_model.unet).double(), _prompt_cache={}
    )
    monkeypatch.setattr(cli, "load_model", lambda *a, **k: model64)
    targets = ["a blue square", "a pig", "a green circle"]
    argv = [
        str(files / "in.png"),
        *[a for a in BASE if a != "-q"],
        "--mask",
        str(files / "mask.png"),
    ]
    code, _, err = _run(
        [*argv, *sum((["--target", t] for t in targets), []), "-o", str(files / "k.png")], capsys
    )
    assert code == 0, err
    assert err.count("3 targets") >= 1, "one progress bar for the K targets"
    for i, t in enumerate(targets):
        code, _, err = _run(
            [*argv, "--target", t, "-q", "-o", str(files / f"single{i}.png")], capsys
        )
        assert code == 0, err
        shared = np.array(Image.open(files / f"k-{i + 1}-{cli.slug(t)}.png"))
        alone = np.array(Image.open(files / f"single{i}.png"))
        assert np.array_equal(shared, alone), (
            f"target {t!r}: the shared run differs from a single run"
        )


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.png", "--target", "x"], "file not found"),
        (["broken.png", "--target", "x"], "cannot read it as an image"),
        (["in.png", "--target", "x", "--mask", "small_mask.png"], "does not match the image size"),
        (["in.png", "--target", "  "], "target prompt is empty"),
        (["in.png", "--target", "x", "--steps", "0"], "steps=0"),
        (["in.png", "--target", "x", "--model", "no/such/folder"], "model"),
        (["in.png", "--target", "x", "-o", "out.xyz"], "unsupported extension"),
    ],
)
def test_bad_input_one_error_line_no_output(files, capsys, monkeypatch, args, message):
    monkeypatch.chdir(files)
    argv = [*args[:1], *BASE, *args[1:]]
    if "-o" not in argv:
        argv += ["-o", "result.png"]
    code, _, err = _run(argv, capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("cds-edit: error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert not (files / "result.png").exists()
    assert not list(files.glob(".result*"))


def test_nan_during_optimisation_is_an_error_and_writes_nothing(files, capsys, monkeypatch):
    from cds_desktop.engine.cds import CDSObjective

    monkeypatch.setattr(
        CDSObjective,
        "step_gradient",
        lambda self, z_src, z_trg, *a, **k: torch.full_like(z_trg, float("nan")),
    )
    out = files / "nan.png"
    code, _, err = _run([str(files / "in.png"), *BASE, "--target", "x", "-o", str(out)], capsys)
    assert code == 2 and "diverged" in err
    assert not out.exists()


def test_thin_mask_at_the_image_edge_edits(tmp_path, capsys):
    """Issue repro: two_shapes.png (192x128) with a mask strip 40,0-140,4 on the demo model
    used to end in a traceback ("Output size is too small")."""
    sample = Path(__file__).resolve().parents[2] / "resources" / "samples" / "two_shapes.png"
    mask = np.zeros((128, 192), np.uint8)
    mask[0:5, 40:141] = 255
    Image.fromarray(mask).save(tmp_path / "thin.png")
    out = tmp_path / "out.png"
    argv = [str(sample), "--source", "a red circle", "--target", "a blue circle"]
    argv += ["--mask", str(tmp_path / "thin.png"), "--model", "shapes-demo", "--steps", "2"]
    argv += ["-q", "-o", str(out)]
    code, _, err = _run(argv, capsys)
    assert code == 0, err
    assert "Traceback" not in err
    source = np.array(Image.open(sample).convert("RGB"))
    result = np.array(Image.open(out).convert("RGB"))
    assert np.array_equal(result[5:], source[5:])  # outside the mask: bit for bit


def test_empty_mask_is_one_error_line(files, capsys):
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(files / "empty.png")
    out = files / "o.png"
    argv = [str(files / "in.png"), *BASE, "--target", "x", "--mask", str(files / "empty.png")]
    code, _, err = _run([*argv, "-o", str(out)], capsys)
    assert code == 2 and not out.exists()
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["cds-edit: error: the mask is empty: paint the area to edit (or pass no mask)"]


def test_an_unwritable_output_is_one_line_and_the_other_targets_still_run(files, capsys):
    """An OSError while writing one target's output (here the name is taken by a folder; on
    Windows: a file held open by a viewer) is reported for that target only."""
    (files / "o-1-a-blue-square.png").mkdir()
    code, _, err = _run([str(files / "in.png"), *BASE, "--target", "a blue square", "--target", "a pig",
                         "-o", str(files / "o.png")], capsys)
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("cds-edit: error:")]
    assert len(lines) == 1 and "o-1-a-blue-square.png" in lines[0] and "a blue square" in lines[0], err
    assert "Traceback" not in err
    assert (files / "o-2-a-pig.png").is_file()
    assert not list(files.glob(".o-*"))


def test_non_latin_prompts_with_output_redirected_to_a_legacy_code_page(files, monkeypatch):
    """Windows redirects stdout in the ANSI code page (cp1252): printing a Chinese prompt
    must not raise UnicodeEncodeError; redirected output is written as UTF-8."""
    import io

    out_bytes, err_bytes = io.BytesIO(), io.BytesIO()
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(out_bytes, encoding="cp1252"))
    monkeypatch.setattr("sys.stderr", io.TextIOWrapper(err_bytes, encoding="cp1252"))
    argv = [str(files / "in.png"), *[a for a in BASE if a != "-q"], "--target", "一只蓝色的猫",
            "-o", str(files / "cat.png")]
    code = cli.main(argv)
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    assert code == 0, err_bytes.getvalue().decode("utf-8", "replace")
    assert "一只蓝色的猫" in out_bytes.getvalue().decode("utf-8")
    assert (files / "cat.png").is_file()
