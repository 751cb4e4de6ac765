"""Where the shipped resources (demo model, samples, icons) live.

Order: $CDS_RESOURCES; the PyInstaller bundle (sys._MEIPASS/resources); the repository's
top-level ``resources/`` folder next to the package.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def resources_root() -> Path:
    env = os.environ.get("CDS_RESOURCES")
    if env:
        return Path(env)
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def resource_path(*parts: str) -> Path:
    return resources_root().joinpath(*parts)
