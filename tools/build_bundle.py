"""Build the one-folder PyInstaller bundle (build.spec) and the Krita and GIMP plug-in zips
(dist/plugins/) for the OS this runs on. Uses the project's .venv (tools/setup.py first).

    python3 tools/build_bundle.py           (Windows: py tools\\build_bundle.py)

Linux: dist/cds-desktop/; Windows: dist/cds-desktop/ with cds-desktop.exe and cds-edit.exe;
macOS: dist/cds-desktop.app (unsigned, see docs/bundle.md) and dist/cds-desktop/.
Standard library only.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import devenv  # noqa: E402

PYINSTALLER = "pyinstaller==6.22.*"


def commands(venv: Path = devenv.VENV, platform: str | None = None) -> list[list]:
    python = devenv.venv_python(venv, platform)
    return [
        [python, "-m", "pip", "install", "-q", PYINSTALLER],
        [python, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
         "--distpath", "dist", "--workpath", "build/pyinstaller", "build.spec"],
        [python, "tools/build_plugins.py"],
    ]  # fmt: skip


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KiB" if n < 2**20 else f"{n / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    if not devenv.venv_python().exists():
        return devenv.fail("build_bundle: no .venv here; run `python3 tools/setup.py` first", 2)
    for cmd in commands():
        rc = devenv.run(cmd)
        if rc != 0:
            return devenv.fail("build_bundle: failed: " + " ".join(map(str, cmd)), rc)
    dist = devenv.ROOT / "dist"
    for path in sorted(dist.glob("cds-desktop*")) + sorted((dist / "plugins").glob("*.zip")):
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        print(f"{_size(sum(p.stat().st_size for p in files)):>10}  {path.relative_to(devenv.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
