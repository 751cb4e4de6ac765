"""Load the stdlib-only scripts under tools/ as modules (they are not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_tool(name: str):
    sys.path.insert(0, str(ROOT / "tools"))  # they import tools/devenv.py
    try:
        spec = importlib.util.spec_from_file_location(
            f"cds_tools_{name}", ROOT / "tools" / f"{name}.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "tools"))


@pytest.fixture(scope="session")
def setup_tool():
    return load_tool("setup")


@pytest.fixture(scope="session")
def test_tool():
    return load_tool("test")


@pytest.fixture(scope="session")
def devenv():
    return load_tool("devenv")
