"""The embedded demo model: loads by name and really edits (a red circle turns blue)."""

from __future__ import annotations

import numpy as np
import pytest

from cds_desktop.demo import classify as clf
from cds_desktop.demo.world import make_scene
from cds_desktop.engine import EditSettings, edit
from cds_desktop.engine.models import DEMO_MODEL, load_model

SEED = 7  # a held-out scene (seeds 0..9999 are never used in training)
BACKGROUND_PSNR_DB = 20.0


@pytest.fixture(scope="module")
def demo(engine_device):
    return load_model(DEMO_MODEL, device=engine_device, dtype="fp32")


def test_demo_model_loads_by_name_and_is_labelled(demo):
    assert demo.kind == "demo" and "demo model" in demo.label
    assert demo.native_size == 64
    assert demo.vae.scale_factor == 4  # read from the model, not assumed
    assert demo.recommended.get("w_cut") is not None, (
        "the quality benchmark's w_cut ships with the model"
    )


def test_red_circle_turns_blue_and_background_stays(demo):
    scene = make_scene(SEED, colour="red", shape="circle")
    result = edit(demo, scene.image, "a red circle", "a blue circle", None, EditSettings(steps=200))
    out = result.image[..., :3]
    before = scene.image[scene.mask].astype(float).mean(axis=0)
    after = out[scene.mask].astype(float).mean(axis=0)
    blueness = lambda rgb: rgb[2] - rgb[0]  # noqa: E731
    assert blueness(after) > blueness(before) + 100, f"object colour {before} -> {after}"
    background = ~np.logical_or(scene.mask, clf.object_mask(out))
    for _ in range(2):  # stay clear of the anti-aliased edge
        background &= np.roll(background, 1, 0) & np.roll(background, -1, 0)
        background &= np.roll(background, 1, 1) & np.roll(background, -1, 1)
    assert clf.psnr(scene.image, out, background) > BACKGROUND_PSNR_DB
