"""run_edit: determinism, masks, sizes, cancel."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from cds_desktop.engine import EditCancelled, EditError, EditSettings, edit, run_edit
from cds_desktop.engine.images import plan_region

FAST = EditSettings(steps=3, working_size=32, preview_every=2)


def _image(h=40, w=56, seed=0, alpha=True):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 4 if alpha else 3), dtype=np.uint8)
    return img


def _mask(h=40, w=56):
    m = np.zeros((h, w), np.uint8)
    m[10:28, 18:40] = 255
    return m


def test_same_seed_same_output_different_seed_different(tiny_model):
    img, mask = _image(), _mask()
    a = edit(tiny_model, img, "a cat", "a pig", mask, FAST)
    b = edit(tiny_model, img, "a cat", "a pig", mask, FAST)
    c = edit(tiny_model, img, "a cat", "a pig", mask, FAST.replace(seed=1))
    assert np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, c.image)


def test_pixels_outside_mask_and_alpha_are_bit_identical(tiny_model):
    img, mask = _image(), _mask()
    before = img.copy()
    r = edit(tiny_model, img, "a cat", "a pig", mask, FAST)
    assert np.array_equal(img, before), "the input array must not be modified"
    outside = mask == 0
    assert np.array_equal(r.image[outside], img[outside])
    assert np.array_equal(r.image[..., 3], img[..., 3])
    assert (r.image[mask > 0][:, :3] != img[mask > 0][:, :3]).any(), "the masked area should change"


@pytest.mark.parametrize("shape", [(40, 72), (72, 40), (33, 47)])
def test_non_square_sizes(tiny_model, shape):
    img = _image(*shape, alpha=False)
    r = edit(tiny_model, img, "a cat", "a pig", None, FAST)
    assert r.image.shape == (*shape, 4)
    h, w = r.region.shape[:2]
    assert h % tiny_model.size_multiple == 0 and w % tiny_model.size_multiple == 0
    assert (w > h) == (shape[1] > shape[0])


def test_region_is_mask_bbox_plus_margin_snapped_to_model_multiple():
    mask = np.zeros((100, 200), np.uint8)
    mask[40:60, 50:90] = 1
    r = plan_region((100, 200), mask, working_size=64, multiple=16, margin=0.25)
    assert r.box == (40, 30, 100, 70)
    assert r.work_size == (64, 48)  # 60x40 -> long side 64 -> 64x42.7 -> snapped to 16


def test_progress_and_previews(tiny_model):
    gen = run_edit(tiny_model, _image(), "a cat", "a pig", _mask(), FAST)
    progress = []
    try:
        while True:
            progress.append(next(gen))
    except StopIteration as stop:
        result = stop.value
    assert [p.step for p in progress] == [1, 2, 3]
    assert all(p.total == 3 for p in progress)
    prev = progress[0].preview()
    assert prev.dtype == np.uint8 and prev.ndim == 3 and prev.shape[2] == 3
    assert progress[1].decoded is not None and progress[0].decoded is None
    assert result.steps == 3 and result.box == progress[0].box


def test_cancel_takes_effect_within_one_step(tiny_model):
    cancel = threading.Event()
    gen = run_edit(tiny_model, _image(), "a cat", "a pig", None, FAST.replace(steps=50), cancel=cancel)
    steps = [next(gen).step, next(gen).step]
    cancel.set()
    with pytest.raises(EditCancelled):
        next(gen)
    assert steps == [1, 2]


def test_identical_prompts_in_dds_leave_the_image_as_the_vae_roundtrip(tiny_model):
    img = _image(alpha=False)
    s = FAST.replace(mode="dds", steps=4)
    same = edit(tiny_model, img, "a cat", "a cat", None, s)
    zero = edit(tiny_model, img, "a cat", "a cat", None, s.replace(lr=1e-30))
    assert np.array_equal(same.region, zero.region)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"source_prompt": " "}, "source prompt is empty"),
        ({"target_prompt": ""}, "target prompt is empty"),
        ({"mask": np.zeros((5, 5), np.uint8)}, "does not match"),
        ({"mask": np.zeros((40, 56), np.uint8)}, "mask is empty"),
        ({"image": np.zeros((4, 4, 2), np.uint8)}, "expected"),
    ],
)
def test_bad_input_gives_clear_errors(tiny_model, kwargs, match):
    args = {"image": _image(), "source_prompt": "a cat", "target_prompt": "a pig", "mask": None} | kwargs
    with pytest.raises(EditError, match=match):
        next(run_edit(tiny_model, args["image"], args["source_prompt"], args["target_prompt"], args["mask"], FAST))


def test_settings_come_from_the_model_when_unset(tiny_model):
    r = edit(tiny_model, _image(), "a cat", "a pig", None, EditSettings(steps=1))
    assert r.settings.working_size == tiny_model.native_size
    assert r.settings.effective_w_cut == 3.0


def _strip_mask(h, w, box):
    m = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = 255
    return m


@pytest.mark.parametrize(
    "hw, box",
    [
        ((128, 192), (40, 0, 141, 5)),  # the repro: thin, along the top edge
        ((128, 192), (40, 0, 141, 1)),  # one row at the top
        ((128, 192), (0, 10, 1, 120)),  # one column at the left edge
        ((128, 192), (191, 127, 192, 128)),  # one pixel in the corner
        ((3, 200), (0, 0, 200, 3)),  # an image thinner than the model's minimum
    ],
)
def test_thin_and_tiny_masks_get_a_region_the_model_can_use(hw, box):
    mask = _strip_mask(*hw, box)
    r = plan_region(hw, mask, working_size=32, multiple=4, margin=0.25, min_cells=2)
    x0, y0, x1, y1 = r.box
    assert 0 <= x0 < x1 <= hw[1] and 0 <= y0 < y1 <= hw[0], "the region leaves the image"
    assert x0 <= box[0] and y0 <= box[1] and x1 >= box[2] and y1 >= box[3], "mask not covered"
    assert all(side % 4 == 0 and side >= 8 for side in r.work_size), r.work_size


def test_a_thin_edge_mask_edits_without_error_and_keeps_the_outside(tiny_model):
    """Issue repro (a 5 px strip on the top edge of a 192x128 image) on the tiny model: it
    used to fail inside PatchNCE ("Output size is too small")."""
    img = _image(128, 192)
    for box in ((40, 0, 141, 1), (40, 0, 141, 5), (191, 127, 192, 128)):
        mask = _strip_mask(128, 192, box)
        r = edit(tiny_model, img, "a cat", "a pig", mask, FAST)
        outside = mask == 0
        assert np.array_equal(r.image[outside], img[outside])
        assert r.image.shape == img.shape


def test_an_image_thinner_than_the_model_minimum_is_stretched_not_refused(tiny_model):
    img = _image(3, 120, alpha=False)
    r = edit(tiny_model, img, "a cat", "a pig", None, FAST)
    assert r.image.shape == (3, 120, 4)
    h, w = r.region.shape[:2]
    assert h >= 2 * tiny_model.size_multiple and w % tiny_model.size_multiple == 0
