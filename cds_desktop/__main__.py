"""`cds-desktop` / `python -m cds_desktop`: the desktop app, or headless modes.

    cds-desktop [IMAGE] [--model M]          the PyQt6 editor
    cds-desktop --screenshot OUT.png [IMAGE] screenshot of the editor (works offscreen)
    cds-desktop --serve [--port N] [--model M] headless plug-in bridge server
    cds-desktop --self-test                  headless end-to-end check of this install
    cds-desktop --edit IMAGE --source ...    the cds-edit CLI (used by the bundle's launcher)

In a bundle, a program named ``cds-edit`` (Windows: the console ``cds-edit.exe`` beside the
windowed ``cds-desktop.exe``) is the CLI; given ``--serve`` or ``--self-test`` first, it runs
those instead, so they have a console on Windows too.
"""

from __future__ import annotations

import sys
from pathlib import Path


def invoked_as_cds_edit() -> bool:
    """True in a bundle's ``cds-edit`` program (not when running from source)."""
    return bool(getattr(sys, "frozen", False)) and Path(sys.executable).stem.lower() == "cds-edit"


def main(argv: list[str] | None = None) -> int:
    from cds_desktop.logs import prepare_console

    prepare_console()  # a windowed app has no stdout/stderr; redirected output is UTF-8
    argv = list(sys.argv[1:] if argv is None else argv)
    if invoked_as_cds_edit() and argv[:1] not in (["--serve"], ["--self-test"], ["--edit"]):
        argv = ["--edit", *argv]
    if argv[:1] == ["--edit"]:  # the bundle's cds-edit launcher
        from cds_desktop.cli import main as cli_main

        return cli_main(argv[1:])
    if "--serve" in argv:
        argv.remove("--serve")
        _exit_on_stop_signals()  # importing torch takes seconds; serve_main then takes over
        from cds_desktop.serve import serve_main

        return serve_main(argv) or 0
    if "--self-test" in argv:
        argv.remove("--self-test")
        from cds_desktop.selftest import main as selftest_main

        return selftest_main(argv)
    try:
        from cds_desktop.app import main as app_main
    except ImportError as exc:
        print(f"cds-desktop: the desktop app needs PyQt6 ({exc}); install it with `pip install PyQt6`", file=sys.stderr)
        return 2
    return app_main(argv)


def _exit_on_stop_signals() -> None:
    """Ctrl+C or SIGTERM before the server has a client: exit 0 at once, no traceback."""
    import os
    import signal

    for name in ("SIGINT", "SIGTERM"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda signum, frame: os._exit(0))


if __name__ == "__main__":
    sys.exit(main())
