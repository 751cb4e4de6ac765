"""The embedded "shapes" demo: a procedural world of coloured shapes, its classifier, and the
conventions the demo model was trained on (see docs/demo-model.md).

Only numpy and PIL are used here, so the world and the classifier can be imported anywhere
(tests, benchmarks, tools) without torch.
"""

from cds_desktop.demo.world import (
    CAPTIONS,
    COLOURS,
    HELD_OUT_SEEDS,
    PALETTE,
    SHAPES,
    TRAIN_SEED_START,
    Scene,
    Sprite,
    caption,
    compose,
    make_scene,
    render,
    training_seeds,
    vocabulary,
)

__all__ = [
    "CAPTIONS",
    "COLOURS",
    "HELD_OUT_SEEDS",
    "PALETTE",
    "SHAPES",
    "TRAIN_SEED_START",
    "Scene",
    "Sprite",
    "caption",
    "compose",
    "make_scene",
    "render",
    "training_seeds",
    "vocabulary",
]
