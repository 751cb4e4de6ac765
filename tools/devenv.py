"""What tools/setup.py, tools/test.py and tools/build_bundle.py share: where the project's
virtual environment keeps its programs on each OS, and the environment tests run in.

Standard library only; every function takes the platform as an argument (default
``sys.platform``) so the Windows and macOS branches are tested on Linux.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
MIN_PYTHON = (3, 10)
#: the PyTorch every set-up installs unless one is already in the venv (README "GPU")
TORCH = "torch==2.13.0"


def is_windows(platform: str | None = None) -> bool:
    return (sys.platform if platform is None else platform) == "win32"


def bin_dir(venv: Path = VENV, platform: str | None = None) -> Path:
    """``.venv/Scripts`` on Windows, ``.venv/bin`` elsewhere."""
    return venv / ("Scripts" if is_windows(platform) else "bin")


def venv_python(venv: Path = VENV, platform: str | None = None) -> Path:
    return bin_dir(venv, platform) / ("python.exe" if is_windows(platform) else "python")


def venv_program(name: str, venv: Path = VENV, platform: str | None = None) -> Path:
    """A console script pip installed into the venv (``lint-imports``, ``cds-edit`` ...)."""
    return bin_dir(venv, platform) / (f"{name}.exe" if is_windows(platform) else name)


def run(cmd: list, **kwargs) -> int:
    """Run ``cmd`` (from the repository root unless ``cwd`` is given); its exit status."""
    kwargs.setdefault("cwd", ROOT)
    return subprocess.call([str(c) for c in cmd], **kwargs)


def fail(message: str, code: int = 1) -> int:
    print(message, file=sys.stderr)
    return code


def python_too_old(version: tuple = tuple(sys.version_info[:2])) -> str | None:
    if tuple(version[:2]) >= MIN_PYTHON:
        return None
    want = ".".join(map(str, MIN_PYTHON))
    return f"cds-desktop needs Python {want} or newer; this is {version[0]}.{version[1]}"


def environ_with(base: dict | None = None, **values: str) -> dict:
    env = dict(os.environ if base is None else base)
    env.update(values)
    return env
