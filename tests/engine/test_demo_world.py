"""The demo world, its classifier, the committed samples, and a smoke run of the training script."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cds_desktop.demo import world
from cds_desktop.demo.classify import NONE, classify, mask_iou, object_mask, psnr

ROOT = Path(__file__).resolve().parents[2]
N_SCENES = 200


def _load_tool(name: str):
    """Import tools/<name>.py (tools/ is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """About what a 4× VAE round trip does: lose detail (2× down/up) and add a little noise."""
    h, w = image.shape[:2]
    small = Image.fromarray(image).resize((w // 2, h // 2), Image.BILINEAR)
    blurred = np.asarray(small.resize((w, h), Image.BICUBIC), dtype=np.float32)
    noisy = blurred + rng.normal(0.0, 3.0, size=blurred.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def held_out_scenes() -> list[world.Scene]:
    return [world.make_scene(seed) for seed in world.HELD_OUT_SEEDS[:N_SCENES]]


def test_same_seed_same_scene_and_different_seeds_differ():
    a, b, c = world.make_scene(11), world.make_scene(11), world.make_scene(12)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert a.caption == b.caption
    assert not np.array_equal(a.image, c.image)


def test_scene_is_64px_rgb_with_one_object_inside_the_frame(held_out_scenes):
    for scene in held_out_scenes[:50]:
        assert scene.image.shape == (64, 64, 3) and scene.image.dtype == np.uint8
        assert scene.mask.shape == (64, 64) and scene.mask.dtype == bool
        ys, xs = np.nonzero(scene.mask)
        assert ys.min() >= 1 and xs.min() >= 1 and ys.max() <= 62 and xs.max() <= 62
        extent = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
        assert 16 <= extent <= 42
        assert scene.image[~scene.mask].mean() > 200  # a light background


def test_every_caption_and_shape_occurs(held_out_scenes):
    seen = {scene.caption for scene in held_out_scenes}
    assert seen == set(world.CAPTIONS)


def test_captions_are_well_formed_and_use_only_the_vocabulary(held_out_scenes):
    vocab = world.vocabulary()
    assert len(vocab) == len(set(vocab))
    assert len(world.CAPTIONS) == len(world.COLOURS) * len(world.SHAPES)
    for scene in held_out_scenes:
        assert scene.caption == f"a {scene.colour} {scene.shape}"
        assert all(word in vocab for word in scene.caption.split())


def test_overriding_colour_keeps_the_layout():
    plain, blue = world.make_scene(5), world.make_scene(5, colour="blue")
    assert blue.colour == "blue" and blue.caption.startswith("a blue ")
    assert (blue.sprite.cx, blue.sprite.cy, blue.sprite.extent) == (
        plain.sprite.cx,
        plain.sprite.cy,
        plain.sprite.extent,
    )
    outside = ~(plain.mask | blue.mask)
    assert np.abs(plain.image[outside].astype(int) - blue.image[outside]).max() <= 1
    with pytest.raises(ValueError, match="colour"):
        world.make_scene(5, colour="purple")


def test_held_out_and_training_seeds_are_disjoint():
    train = world.training_seeds(1_000_000)
    assert min(train) > max(world.HELD_OUT_SEEDS)
    assert not set(world.HELD_OUT_SEEDS) & set(world.training_seeds(20_000))


def test_classifier_on_clean_scenes(held_out_scenes):
    right = sum(classify(s.image) == (s.colour, s.shape) for s in held_out_scenes)
    assert right / len(held_out_scenes) >= 0.98
    ious = [mask_iou(object_mask(s.image), s.mask) for s in held_out_scenes[:50]]
    assert np.mean(ious) >= 0.95 and min(ious) >= 0.8


def test_classifier_on_blurred_noisy_scenes(held_out_scenes):
    rng = np.random.default_rng(0)
    right = sum(classify(degrade(s.image, rng)) == (s.colour, s.shape) for s in held_out_scenes)
    assert right / len(held_out_scenes) >= 0.98


def test_classifier_says_none_for_an_empty_background():
    empty = np.full((64, 64, 3), 240, dtype=np.uint8)
    assert classify(empty) == (NONE, NONE)
    assert not object_mask(empty).any()


def test_mask_iou_and_psnr():
    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.zeros((4, 4), bool)
    b[1:3] = True
    assert mask_iou(a, b) == pytest.approx(4 / 12)
    assert mask_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0
    x = np.zeros((8, 8, 3), np.uint8)
    y = x.copy()
    y[0, 0] = 255
    assert psnr(x, x) == float("inf")
    assert psnr(x, y) == pytest.approx(10 * np.log10(8 * 8))  # 3 of 192 values off by 255
    assert psnr(x, y, where=~np.eye(8, dtype=bool)) == float("inf")


@pytest.mark.parametrize("name", ["red_circle", "blue_square", "green_triangle", "yellow_circle"])
def test_committed_samples_match_their_names_and_masks(name):
    folder = ROOT / "resources" / "samples"
    image = np.asarray(Image.open(folder / f"{name}.png").convert("RGB"))
    mask = np.asarray(Image.open(folder / f"{name}_mask.png")) > 127
    assert image.shape == (64, 64, 3)
    assert classify(image) == tuple(name.split("_"))
    found = object_mask(image)
    assert found.sum() > 0 and not (found & ~mask).any()  # the edit mask covers the object


def test_make_samples_is_reproducible(tmp_path):
    tool = _load_tool("make_samples")
    tool.make_samples(tmp_path)
    committed = ROOT / "resources" / "samples"
    for path in sorted(tmp_path.glob("*.png")):
        assert np.array_equal(
            np.asarray(Image.open(path)), np.asarray(Image.open(committed / path.name))
        ), path.name
    two = np.asarray(Image.open(committed / "two_shapes.png"))
    assert two.shape == (128, 192, 3)


def test_training_script_smoke_run_gives_a_loadable_pipeline(tmp_path):
    from diffusers import StableDiffusionPipeline

    train = _load_tool("train_demo_model")
    out = tmp_path / "shapes-demo"
    tiny = "--vae-steps 2 --unet-steps 2 --vae-batch 4 --batch 4 --train-scenes 16"
    tiny += " --eval-samples 2 --eval-scenes 2 --eval-steps 2 --log-every 1 --workers 1"
    report = train.main(["--device", "cpu", "--out", str(out), *tiny.split()])

    for part in ("vae", "unet", "text_encoder", "tokenizer", "scheduler"):
        assert (out / part).is_dir(), part
    index = json.loads((out / "model_index.json").read_text())
    assert index["safety_checker"] in (None, [None, None])
    assert index["feature_extractor"] in (None, [None, None])
    assert not list(out.rglob("*.bin")) and list(out.rglob("*.safetensors"))
    assert report["folder_mb"] <= 30
    assert json.loads((out / "cds_model.json").read_text()) == {
        "label": "shapes-demo (demo model: 64×64 coloured shapes only)",
        "kind": "demo",
        "native_size": 64,
        "recommended": {"w_cut": None},
    }
    saved = json.loads((out / "training_report.json").read_text())
    assert set(saved["samples"]) >= {"colour_correct", "shape_correct", "both_correct"}
    assert "psnr_db_mean" in saved["vae"] and saved["seconds"]["total"] > 0
    assert Image.open(out / "samples.png").size[0] > 0

    pipe = StableDiffusionPipeline.from_pretrained(
        out, safety_checker=None, requires_safety_checker=False
    )
    assert pipe.vae.config.scaling_factor == pytest.approx(report["vae"]["scaling_factor"])
    assert pipe.vae_scale_factor == 4 and pipe.unet.config.sample_size == 16
    ids = pipe.tokenizer("a yellow triangle").input_ids
    assert len(ids) == 5  # <start> a yellow triangle <end>: one token per word
    attn1 = [n for n in pipe.unet.attn_processors if n.startswith("up_blocks") and ".attn1." in n]
    assert attn1
