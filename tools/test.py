"""Run the checks CI runs, on Linux, macOS or Windows: the import-layering contracts, lint,
formatting, and the test suite (no GPU needed).

    python3 tools/test.py [PYTEST ARGS...]          (Windows: py tools\\test.py)

Uses the project's ``.venv`` (``tools/setup.py`` creates it). Tests run offscreen
(``QT_QPA_PLATFORM=offscreen`` unless set), with ``HF_HUB_OFFLINE=1`` and one OpenMP/MKL
thread per process unless set (tiny test models: one compute thread each avoids
oversubscription when the app, bridge and engine threads of a test run at once). The slow
tests (bundle build and its self-test, full-size VAE export) run only with ``CDS_SLOW=1``.
Stops at the first failing check; the exit status is that check's. Standard library only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import devenv  # noqa: E402

LINTED = ("cds_desktop", "plugin_bridge", "tests", "benchmarks", "tools")
NO_TESTS = 5  # pytest's exit status when it collected nothing (e.g. a -k that matches none)


def check_environment(base: dict | None = None) -> dict:
    env = dict(os.environ if base is None else base)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[variable] = env.get(variable) or "1"
    return env


def checks(
    pytest_args: list[str], slow: bool, venv: Path = devenv.VENV, platform: str | None = None
) -> list[tuple[str, list]]:
    """(what is checked, command) in the order they run."""
    python = devenv.venv_python(venv, platform)
    marker = [] if slow else ["-m", "not slow"]
    return [
        ("import-linter: layering contracts broken (docs/design.md, 'Layers')",
         [devenv.venv_program("lint-imports", venv, platform)]),
        ("ruff check: lint errors", [python, "-m", "ruff", "check", *LINTED]),
        ("ruff format --check: files need `ruff format`", [python, "-m", "ruff", "format", "--check", *LINTED]),
        ("pytest: tests failed", [python, "-m", "pytest", "-q", *marker, "-p", "no:cacheprovider", *pytest_args]),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    pytest_args = list(sys.argv[1:] if argv is None else argv)
    if not devenv.venv_python().exists():
        return devenv.fail("test: no .venv here; run `python3 tools/setup.py` first", 2)
    env = check_environment()
    slow = env.get("CDS_SLOW", "0") == "1"
    for failure, cmd in checks(pytest_args, slow):
        rc = devenv.run(cmd, env=env)
        if rc == NO_TESTS and cmd[1:3] == ["-m", "pytest"]:
            print("pytest collected no tests", file=sys.stderr)
            rc = 0
        if rc != 0:
            return devenv.fail(f"test: {failure}", rc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
