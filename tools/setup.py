"""Create or refresh the project's virtual environment ``.venv`` on Linux, macOS or Windows.

    python3 tools/setup.py [--python PYTHON] [--torch-index URL]     (Windows: py tools\\setup.py)

* Creates ``.venv`` with the Python running this script (or ``--python``) if it does not exist.
* Installs ``torch==2.13.0`` unless the venv already has a torch (so a CUDA build installed
  first is kept; README "GPU"). ``--torch-index`` picks the wheel index for it, e.g.
  ``https://download.pytorch.org/whl/cpu`` for the CPU-only Linux build.
* Installs the project in editable mode with the app, ONNX and dev extras, pinned by
  ``tools/constraints.txt``.
* Idempotent: a stamp in ``.venv`` holds a hash of pyproject.toml, the constraints and these
  scripts; when it matches, nothing is installed.
* On Linux, checks that the system libraries PyQt6's X11 (xcb) platform plug-in needs are
  present and names the Debian/Ubuntu packages of any that are missing (a warning: tests run
  offscreen without them, the desktop app's window does not).

Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import devenv  # noqa: E402

STAMP = ".cds-setup-stamp"
STAMPED_FILES = ("pyproject.toml", "tools/constraints.txt", "tools/setup.py", "tools/devenv.py")
EXTRAS = "app,onnx,dev"

#: shared libraries the xcb platform plug-in of PyQt6 6.x links (ldd of libqxcb.so and
#: libQt6XcbQpa.so.6) that a minimal Debian/Ubuntu lacks, with the package providing each
QT_XCB_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
}
QT_XCB_FILES = ("Qt6/plugins/platforms/libqxcb.so", "Qt6/lib/libQt6XcbQpa.so.6")


def stamp_value(root: Path = devenv.ROOT) -> str:
    digest = hashlib.sha256()
    for name in STAMPED_FILES:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes())
    return digest.hexdigest()


def torch_command(python: Path, index: str | None = None) -> list:
    cmd = [python, "-m", "pip", "install", "-q", devenv.TORCH]
    return cmd + ["--index-url", index] if index else cmd


def install_commands(python: Path) -> list[list]:
    return [
        [python, "-m", "pip", "install", "-q", "--upgrade", "pip"],
        [python, "-m", "pip", "install", "-q", "-c", "tools/constraints.txt", "-e", f".[{EXTRAS}]"],
        # CLIP's reference tokenizer for the tokenizer tests, read from the package's files;
        # --no-deps because its own dependencies (timm, torchvision) are not needed for that
        [python, "-m", "pip", "install", "-q", "--no-deps", "-c", "tools/constraints.txt", "open-clip-torch"],
    ]


# ----------------------------------------------------------------------------- Qt on Linux
def missing_in_ldd(text: str) -> list[str]:
    """The sonames ``ldd`` reports as ``not found``, in order, without repeats."""
    found = re.findall(r"^\s*(\S+)\s*=>\s*not found", text, flags=re.MULTILINE)
    return list(dict.fromkeys(found))


def qt_warning(missing: list[str]) -> str:
    """The message naming every package to install (sonames we have no package for as-is)."""
    packages = list(dict.fromkeys(QT_XCB_PACKAGES.get(s, s) for s in missing))
    return (
        "warning: the desktop app's window needs system libraries that are missing here: "
        + ", ".join(missing)
        + ".\n  Debian/Ubuntu: sudo apt install "
        + " ".join(packages)
        + "\n  (tests, cds-edit, --serve and --self-test run without them)"
    )


def check_qt_libraries(
    python: Path, platform: str | None = None, runner=subprocess.run
) -> str | None:
    """On Linux: a warning naming the missing libraries of PyQt6's xcb plug-in, else None."""
    if not (sys.platform if platform is None else platform).startswith("linux"):
        return None
    try:
        where = runner(
            [str(python), "-c", "import os, PyQt6; print(os.path.dirname(PyQt6.__file__))"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None  # no PyQt6 (the app extra is not installed): nothing to check
    missing: list[str] = []
    for rel in QT_XCB_FILES:
        path = Path(where) / rel
        if not path.is_file():
            continue
        try:
            out = runner(["ldd", str(path)], capture_output=True, text=True).stdout
        except OSError:
            return None  # no ldd: cannot tell
        missing += [s for s in missing_in_ldd(out) if s not in missing]
    return qt_warning(missing) if missing else None


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tools/setup.py", description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=sys.executable, help="interpreter for a new .venv")
    ap.add_argument("--torch-index", help="wheel index URL for torch (default: pip's own)")
    args = ap.parse_args(argv)
    python = devenv.venv_python()
    if not python.exists():
        problem = devenv.python_too_old() if args.python == sys.executable else None
        if problem:
            return devenv.fail(f"setup: {problem}; run this script with a newer one")
        print("creating .venv ...", file=sys.stderr)
        if devenv.run([args.python, "-m", "venv", devenv.VENV]) != 0:
            return devenv.fail(f"setup: could not create {devenv.VENV} with {args.python}")
    stamp = devenv.VENV / STAMP
    want = stamp_value()
    if not (stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == want):
        print(
            "setting up .venv (the first run downloads the dependencies; a few minutes)...",
            file=sys.stderr,
        )
        commands = install_commands(python)
        if devenv.run([python, "-c", "import torch"], stderr=subprocess.DEVNULL) != 0:
            # pinned: a bare `torch` requirement can pull an unexpected (multi-GB) build
            commands.insert(1, torch_command(python, args.torch_index))
        for cmd in commands:
            if devenv.run(cmd) != 0:
                return devenv.fail("setup: failed: " + " ".join(map(str, cmd)))
        stamp.write_text(want + "\n", encoding="utf-8")
    warning = check_qt_libraries(python)
    if warning:
        print(warning, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
