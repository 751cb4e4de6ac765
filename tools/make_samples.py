"""Write the sample images of resources/samples/ from held-out demo-world scenes.

For each sample ``NAME.png`` it also writes ``NAME_mask.png``: the object's mask dilated by
3 px (white = edit, black = keep), ready for a CDS edit such as "a red circle" → "a blue circle".
``two_shapes.png`` is a 192×128 (non-square) scene with two shapes; its mask covers the circle.

    python tools/make_samples.py [--out resources/samples]

Deterministic: running it again rewrites identical files.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from cds_desktop.demo import world  # noqa: E402

log = logging.getLogger("make_samples")

SAMPLES = (("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "circle"))
MIN_SAMPLE_EXTENT = 28.0  # pick scenes whose object is big enough to edit comfortably
MASK_GROW = 3
TWO_SHAPES_SEED = 7


def dilate(mask: np.ndarray, radius: int = MASK_GROW) -> np.ndarray:
    """Grow a boolean mask by a disk of ``radius`` pixels."""
    h, w = mask.shape
    padded = np.pad(mask, radius)
    out = np.zeros_like(mask)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dx * dx + dy * dy <= radius * radius:
                out |= padded[radius + dy : radius + dy + h, radius + dx : radius + dx + w]
    return out


def sample_seed(colour: str, shape: str) -> int:
    """The first held-out seed whose scene is ``colour shape`` with a comfortably large object."""
    for seed in world.HELD_OUT_SEEDS:
        scene = world.make_scene(seed)
        if (scene.colour, scene.shape) == (colour, shape) and (
            scene.sprite.extent >= MIN_SAMPLE_EXTENT
        ):
            return seed
    raise LookupError(f"no held-out scene of a {colour} {shape}")


def two_shapes() -> tuple[np.ndarray, np.ndarray]:
    """A 192×128 scene: a red circle and a blue square; the mask covers the circle."""
    sprites = [
        world.Sprite("red", "circle", 56.0, 62.0, 60.0),
        world.Sprite("blue", "square", 138.0, 66.0, 54.0),
    ]
    image, masks = world.compose(sprites, 192, 128, TWO_SHAPES_SEED)
    return image, masks[0]


def save_pair(out: Path, name: str, image: np.ndarray, mask: np.ndarray) -> None:
    Image.fromarray(image).save(out / f"{name}.png", optimize=True)
    mask_img = Image.fromarray((dilate(mask) * 255).astype(np.uint8), mode="L")
    mask_img.save(out / f"{name}_mask.png", optimize=True)
    log.info("wrote %s.png and %s_mask.png", name, name)


def make_samples(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    for colour, shape in SAMPLES:
        scene = world.make_scene(sample_seed(colour, shape))
        save_pair(out, f"{colour}_{shape}", scene.image, scene.mask)
    save_pair(out, "two_shapes", *two_shapes())
    return sorted(out.glob("*.png"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "resources" / "samples")
    args = parser.parse_args(argv)
    make_samples(args.out)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    main()
