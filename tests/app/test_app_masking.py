"""Mask operations (pure numpy): brush, eraser, shapes, invert/clear/alpha/feather."""

from __future__ import annotations

import numpy as np

from cds_desktop.app import masking


def test_hard_dab_fills_a_disc_and_reports_its_box():
    mask = np.zeros((40, 40), np.uint8)
    box = masking.dab(mask, 20, 20, size=10, hardness=1.0, erase=False)
    assert mask[20, 20] == 255 and mask[20, 24] == 255
    assert mask[20, 27] == 0 and mask[0, 0] == 0
    x0, y0, x1, y1 = box
    assert x0 <= 15 and x1 >= 25 and y0 <= 15 and y1 >= 25
    assert not mask[:y0].any() and not mask[y1:].any()


def test_soft_dab_falls_off_and_eraser_removes():
    mask = np.zeros((40, 40), np.uint8)
    masking.dab(mask, 20, 20, size=20, hardness=0.0, erase=False)
    assert mask[20, 20] > 200 and 0 < mask[20, 27] < mask[20, 23]
    masking.dab(mask, 20, 20, size=6, hardness=1.0, erase=True)
    assert mask[20, 20] == 0 and mask[20, 27] > 0


def test_segment_leaves_no_gaps():
    mask = np.zeros((20, 100), np.uint8)
    masking.dab(mask, 5, 10, 6, 1.0, False)
    masking.segment(mask, (5, 10), (95, 10), 6, 1.0, False)
    assert (mask[10, 5:95] == 255).all()


def test_shapes_add_and_subtract_and_clip():
    mask = np.zeros((20, 30), np.uint8)
    assert masking.fill_shape(mask, (25, 15, -5, -5), ellipse=False, subtract=False) == (
        0,
        0,
        25,
        15,
    )
    assert mask[:15, :25].all() and not mask[15:].any() and not mask[:, 25:].any()
    masking.fill_shape(mask, (0, 0, 20, 10), ellipse=True, subtract=True)
    assert mask[5, 10] == 0 and mask[0, 0] == 255  # ellipse corners stay
    assert masking.fill_shape(mask, (40, 40, 50, 50), ellipse=False, subtract=False) is None


def test_invert_clear_alpha_feather():
    mask = np.zeros((10, 10), np.uint8)
    mask[2:5, 2:5] = 255
    masking.invert(mask)
    assert mask[3, 3] == 0 and mask[8, 8] == 255
    masking.clear(mask)
    assert not mask.any()
    pixels = np.zeros((10, 10, 4), np.uint8)
    pixels[..., 3] = 77
    masking.from_alpha(mask, pixels)
    assert (mask == 77).all()
    wide = np.zeros((10, 40), np.uint8)
    wide[:, 20:] = 255
    masking.feather(wide, 2)
    assert 0 < wide[5, 19] < 255 and wide[5, 0] == 0 and wide[5, 39] == 255
