"""Model specs offered in the picker and how they are labelled to the user.

The engine accepts ``shapes-demo``, ``tiny-random``, a Hugging Face repo id, a local diffusers
folder or a ``.safetensors``/``.ckpt`` file. ``tiny-random`` has random weights: it is only
offered as a clearly labelled test fixture, and every label for it says RANDOM WEIGHTS.
"""

from __future__ import annotations

from pathlib import Path

DEMO = "shapes-demo"
TINY_RANDOM = "tiny-random"
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"

DEMO_LABEL = "shapes-demo (demo model: 64x64 coloured shapes only)"
RANDOM_LABEL = "tiny-random (RANDOM WEIGHTS: test fixture, edits are noise)"
RANDOM_ENTRY = "test fixture: random weights (tiny-random)"


def is_random(spec: str) -> bool:
    return spec == TINY_RANDOM


def kind_of(spec: str) -> str:
    """'demo' | 'random' | 'file' | 'folder' | 'hub' (by the spec's shape, nothing loaded)."""
    if spec == DEMO:
        return "demo"
    if spec == TINY_RANDOM:
        return "random"
    path = Path(spec).expanduser()
    if path.suffix.lower() in (".safetensors", ".ckpt"):
        return "file"
    if spec.startswith(("/", ".", "~")) or path.is_dir() or "\\" in spec or ":" in spec[:3]:
        return "folder"
    return "hub"


def label(spec: str) -> str:
    """What the window title and status bar say about the model."""
    kind = kind_of(spec)
    if kind == "demo":
        return DEMO_LABEL
    if kind == "random":
        return RANDOM_LABEL
    if kind in ("file", "folder"):
        return f"{Path(spec).name} ({kind}: {spec})"
    return f"{spec} (Hugging Face)"


def entry_text(spec: str) -> str:
    """The picker's text for a spec."""
    kind = kind_of(spec)
    if kind == "demo":
        return "shapes-demo (demo model)"
    if kind == "random":
        return RANDOM_ENTRY
    if kind == "file":
        return f"file: {Path(spec).name}"
    if kind == "folder":
        return f"folder: {Path(spec).name or spec}"
    return f"hub: {spec}"
