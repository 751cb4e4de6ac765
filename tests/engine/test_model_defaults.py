"""Settings a model family changes (guidance 5 for SDXL) apply when the user did not choose
them: EditSettings.with_model_defaults, and the job queue filling EditRequest.model_defaults
from the loaded model."""

from __future__ import annotations

import dataclasses

import numpy as np

from cds_desktop.engine import EditSettings
from cds_desktop.engine.jobs import DONE, EditRequest, JobQueue
from cds_desktop.engine.settings import MODEL_DEFAULTS
from cds_desktop.engine.specs import FAMILIES

FAST = EditSettings(steps=1, working_size=32)


def test_with_model_defaults_fills_only_unset_known_knobs():
    recommended = {"guidance_scale": 5.0, "w_cut": 0.75, "steps": 3}
    s = FAST.with_model_defaults(recommended, ["guidance_scale", "steps"])
    assert s.guidance_scale == 5.0
    assert s.steps == FAST.steps, "steps is no model default"
    assert s.w_cut is None, "w_cut is resolved by run_edits, not here"
    assert FAST.with_model_defaults(recommended, ()) == FAST  # the user chose: kept
    assert FAST.with_model_defaults({}, MODEL_DEFAULTS) == FAST  # no recommendation: kept
    assert FAST.with_model_defaults({"guidance_scale": None}, MODEL_DEFAULTS) == FAST


def test_sdxl_family_recommends_guidance_5():
    assert FAMILIES["sdxl"].defaults()["guidance_scale"] == 5.0
    assert FAMILIES["sd1"].defaults()["guidance_scale"] == 7.5


def test_the_queue_applies_the_loaded_models_default_to_unset_knobs(tiny_model):
    model = dataclasses.replace(tiny_model, recommended={"guidance_scale": 5.0})
    queue = JobQueue(loader=lambda spec, **kw: model)
    img = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    base = dict(image=img, source_prompt="a cat", target_prompt="a pig", settings=FAST)
    try:
        unset = queue.submit(EditRequest(**base, model_defaults=frozenset(MODEL_DEFAULTS)))
        chosen = queue.submit(EditRequest(**base))
        assert unset.wait(120) and chosen.wait(120)
    finally:
        queue.shutdown()
    assert unset.state is DONE and chosen.state is DONE
    assert unset.result.settings.guidance_scale == 5.0
    assert chosen.result.settings.guidance_scale == 7.5
