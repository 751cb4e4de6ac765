"""The demo world: one coloured shape on a light background, 64×64 RGB, caption "a {colour} {shape}".

Everything is drawn from a seed, so a scene is a pure function of ``make_scene(seed, ...)``.
Seeds in ``HELD_OUT_SEEDS`` are never used for training (the training script draws seeds from
``TRAIN_SEED_START`` upwards); tests, benchmarks and samples use held-out seeds.

Conventions:
- Pixel (row i, column j) covers the square [j, j+1] × [i, i+1]; its centre is (j+0.5, i+0.5).
- A shape's ``extent`` is the width of its bounding box in pixels: the circle's diameter, the
  square's side, the base of the (upright, equilateral) triangle. Its bounding box is centred
  on (cx, cy) and lies at least ``MARGIN`` pixels inside the frame.
- Edges are anti-aliased by 4×4 supersampled coverage; ``mask`` is coverage ≥ 0.5.
- Passing ``colour`` or ``shape`` to ``make_scene`` changes only that attribute: the layout,
  background and noise of the seed stay the same (handy for "before/after" edit pairs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow")
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (214, 44, 40),
    "green": (44, 160, 64),
    "blue": (40, 84, 204),
    "yellow": (238, 194, 24),
}
# Light backgrounds: near-white, light grey, light beige, light blue-grey.
BACKGROUND_TINTS: tuple[tuple[int, int, int], ...] = (
    (247, 247, 245),
    (230, 231, 233),
    (243, 235, 220),
    (233, 237, 242),
)
HELD_OUT_SEEDS = range(0, 10_000)
TRAIN_SEED_START = 1_000_000
MIN_EXTENT, MAX_EXTENT = 18.0, 40.0  # at 64 px; scaled with the image size
MARGIN = 2.0
COLOUR_JITTER = 10  # ± per channel around the palette colour
SUPERSAMPLE = 4
_SQRT3 = math.sqrt(3.0)


@dataclass(frozen=True)
class Sprite:
    """One shape to draw: where, how big (``extent``, px) and in which RGB colour."""

    colour: str
    shape: str
    cx: float
    cy: float
    extent: float
    rgb: tuple[int, int, int] | None = None  # None: the palette colour

    @property
    def height(self) -> float:
        return bbox_height(self.shape, self.extent)


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # H×W×3 uint8
    mask: np.ndarray  # H×W bool, the object's pixels (coverage ≥ 0.5)
    colour: str
    shape: str
    caption: str
    sprite: Sprite


def caption(colour: str, shape: str) -> str:
    return f"a {colour} {shape}"


CAPTIONS: tuple[str, ...] = tuple(caption(c, s) for c in COLOURS for s in SHAPES)


def vocabulary() -> list[str]:
    """Every word any caption uses."""
    return ["a", *COLOURS, *SHAPES]


def training_seeds(count: int, offset: int = 0) -> range:
    """Seeds for training scenes: disjoint from ``HELD_OUT_SEEDS`` by construction."""
    return range(TRAIN_SEED_START + offset, TRAIN_SEED_START + offset + count)


def bbox_height(shape: str, extent: float) -> float:
    return extent * _SQRT3 / 2.0 if shape == "triangle" else extent


def _check(colour: str, shape: str) -> None:
    if colour not in PALETTE:
        raise ValueError(f"colour={colour!r}: expected one of {COLOURS}")
    if shape not in SHAPES:
        raise ValueError(f"shape={shape!r}: expected one of {SHAPES}")


def coverage(sprite: Sprite, width: int, height: int) -> np.ndarray:
    """Fraction of each pixel the shape covers (H×W float32 in [0, 1]), 4×4 supersampled."""
    n = SUPERSAMPLE
    xs = (np.arange(width * n, dtype=np.float32) + 0.5) / n - sprite.cx
    ys = (np.arange(height * n, dtype=np.float32) + 0.5) / n - sprite.cy
    x, y = xs[None, :], ys[:, None]
    half = sprite.extent / 2.0
    if sprite.shape == "circle":
        inside = x * x + y * y <= half * half
    elif sprite.shape == "square":
        inside = (np.abs(x) <= half) & (np.abs(y) <= half)
    elif sprite.shape == "triangle":
        h = sprite.height
        t = y + h / 2.0  # distance below the apex
        inside = (t >= 0) & (t <= h) & (np.abs(x) * _SQRT3 <= t)
    else:
        raise ValueError(f"shape={sprite.shape!r}: expected one of {SHAPES}")
    inside = inside.astype(np.float32).reshape(height, n, width, n)
    return inside.mean(axis=(1, 3))


def background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A light, slightly tinted background with a gentle linear gradient (H×W×3 float32)."""
    tint = np.array(BACKGROUND_TINTS[rng.integers(len(BACKGROUND_TINTS))], dtype=np.float32)
    tint += rng.integers(-4, 5, size=3)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    amplitude = rng.uniform(0.0, 12.0)  # peak-to-peak brightness change across the frame
    xs = (np.arange(width, dtype=np.float32) + 0.5) / max(width, height) - 0.5
    ys = (np.arange(height, dtype=np.float32) + 0.5) / max(width, height) - 0.5
    ramp = math.cos(angle) * xs[None, :] + math.sin(angle) * ys[:, None]
    return tint[None, None, :] + amplitude * ramp[:, :, None]


def compose(
    sprites: Sequence[Sprite], width: int, height: int, background_seed: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Draw ``sprites`` in order on a seeded background; return (uint8 image, one mask each)."""
    rng = np.random.default_rng(background_seed)
    image = background(width, height, rng)
    masks = []
    for sprite in sprites:
        _check(sprite.colour, sprite.shape)
        rgb = np.array(sprite.rgb or PALETTE[sprite.colour], dtype=np.float32)
        alpha = coverage(sprite, width, height)[:, :, None]
        image = image * (1.0 - alpha) + rgb * alpha
        masks.append(alpha[:, :, 0] >= 0.5)
    noise_sigma = rng.uniform(0.5, 2.0)
    image = image + rng.normal(0.0, noise_sigma, size=image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), masks


def render(
    colour: str,
    shape: str,
    cx: float,
    cy: float,
    extent: float,
    background_seed: int,
    size: int = 64,
    rgb: tuple[int, int, int] | None = None,
) -> Scene:
    """One shape at an explicit place on a ``size``×``size`` seeded background."""
    sprite = Sprite(colour, shape, float(cx), float(cy), float(extent), rgb)
    image, (mask,) = compose([sprite], size, size, background_seed)
    return Scene(image, mask, colour, shape, caption(colour, shape), sprite)


def random_sprite(
    rng: np.random.Generator,
    width: int,
    height: int,
    colour: str | None = None,
    shape: str | None = None,
    scale: float = 1.0,
) -> Sprite:
    """Draw colour, shape, size, place and colour jitter (always the same number of draws)."""
    drawn_colour = COLOURS[rng.integers(len(COLOURS))]
    drawn_shape = SHAPES[rng.integers(len(SHAPES))]
    colour, shape = colour or drawn_colour, shape or drawn_shape
    _check(colour, shape)
    extent = rng.uniform(MIN_EXTENT, MAX_EXTENT) * scale
    u, v = rng.uniform(size=2)
    half_w, half_h = extent / 2.0, bbox_height(shape, extent) / 2.0
    margin = MARGIN * scale
    cx = margin + half_w + u * (width - 2 * (margin + half_w))
    cy = margin + half_h + v * (height - 2 * (margin + half_h))
    jitter = rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3)
    rgb = tuple(int(c) for c in np.clip(np.array(PALETTE[colour]) + jitter, 0, 255))
    return Sprite(colour, shape, float(cx), float(cy), float(extent), rgb)


def make_scene(
    seed: int, colour: str | None = None, shape: str | None = None, size: int = 64
) -> Scene:
    """The scene of ``seed`` (deterministic); ``colour``/``shape`` override what the seed drew."""
    rng = np.random.default_rng(seed)
    sprite = random_sprite(rng, size, size, colour, shape, scale=size / 64.0)
    background_seed = int(rng.integers(2**62))
    image, (mask,) = compose([sprite], size, size, background_seed)
    return Scene(
        image, mask, sprite.colour, sprite.shape, caption(sprite.colour, sprite.shape), sprite
    )
