"""Model specs offered in the picker and how they are labelled to the user.

The names and labels come from engine/specs.py, the one source the engine, the bridge, the
self-test and the command lines use too (so they say the same thing about the same model).
``tiny-random`` has random weights: it is only offered as a clearly labelled test fixture, and
every label for it says RANDOM WEIGHTS.
"""

from __future__ import annotations

from cds_desktop.engine.specs import (
    DEMO_LABEL,
    RANDOM_ENTRY,
    RANDOM_LABEL,
    TINY_RANDOM,
    entry_text,
    is_random,
    kind_of,
    label,
)
from cds_desktop.engine.specs import DEMO_MODEL as DEMO
from cds_desktop.engine.specs import SD15_REPO as SD15

__all__ = [
    "DEMO",
    "DEMO_LABEL",
    "RANDOM_ENTRY",
    "RANDOM_LABEL",
    "SD15",
    "TINY_RANDOM",
    "entry_text",
    "is_random",
    "kind_of",
    "label",
]
