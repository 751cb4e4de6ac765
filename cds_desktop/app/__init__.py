"""The PyQt6 desktop editor.

    main(argv) -> int                          cds-desktop [IMAGE] [--model M]
    screenshot(out_path, image_path) -> int    cds-desktop --screenshot OUT.png [IMAGE]

Only this package imports Qt. It reaches the engine through ``engine.jobs`` (JobQueue,
EditRequest, JobEvent), ``engine.settings``, ``engine.errors`` and the result objects.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from cds_desktop.logs import setup_logging

log = logging.getLogger(__name__)


class _ArgError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line for the user, no usage dump
        raise _ArgError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cds-desktop", description="CDS image editor")
    p.add_argument("image", nargs="?", help="image or .ora file to open")
    p.add_argument("--model", help="shapes-demo, a Hugging Face repo id, a folder or a file")
    p.add_argument("--screenshot", metavar="OUT.png", help="write a screenshot and exit")
    p.add_argument(
        "--demo-mask",
        action="store_true",
        help="with --screenshot: paint an example mask on the image first",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
    except _ArgError as exc:
        print(f"cds-desktop: {exc}", file=sys.stderr)
        return 2
    setup_logging(logging.INFO)
    if args.screenshot:
        return screenshot(args.screenshot, args.image, model=args.model, demo_mask=args.demo_mask)
    from .settings import Preferences, limit_cpu_threads

    try:
        app = _application()
    except _ArgError as exc:
        print(f"cds-desktop: {exc}", file=sys.stderr)
        return 2
    from cds_desktop.logs import setup_file_logging

    log_path = setup_file_logging()  # named in every "details are in the log" message
    if log_path is not None:
        log.info("cds-desktop log file: %s", log_path)
    prefs = Preferences()
    threads = limit_cpu_threads(prefs.cpu_threads)  # before the engine (torch) is imported
    if threads:
        log.info("edits use %d CPU thread(s)", threads)
    from .main_window import MainWindow

    window = MainWindow(prefs, model=args.model)
    window.show()
    if args.image:
        window.open_path(args.image)
    code = app.exec()
    window.shutdown()
    return int(code)


def _has_display() -> bool:
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _application(offscreen_ok: bool = False):
    """The QApplication (created once). Without a display, only headless modes may fall back
    to the offscreen platform; the editor itself refuses to start instead of hiding."""
    from PyQt6.QtWidgets import QApplication

    from .settings import APPLICATION, ORGANIZATION

    app = QApplication.instance()
    if app is None:
        if not _has_display():
            if not offscreen_ok:
                raise _ArgError(
                    "no display found (DISPLAY/WAYLAND_DISPLAY unset); run it in a desktop "
                    "session, or use --screenshot / --serve for headless use"
                )
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        app = QApplication([sys.argv[0] if sys.argv else "cds-desktop"])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    return app


def screenshot(
    out_path: str | os.PathLike,
    image_path: str | os.PathLike | None = None,
    model: str | None = None,
    demo_mask: bool = False,
    size: tuple[int, int] = (1280, 800),
    values: dict | None = None,
) -> int:
    """Open the main window (offscreen works), load ``image_path``, write a PNG of it; 0 = ok.

    ``values`` (optional) fills the prompt panel (see PromptPanel.values()).
    """
    import tempfile

    from PyQt6.QtCore import QSettings

    from .documents.files import atomic_write
    from .main_window import MainWindow
    from .settings import Preferences

    app = _application(offscreen_ok=True)
    with tempfile.TemporaryDirectory() as tmp:  # never touch the user's preferences
        store = QSettings(str(Path(tmp) / "prefs.ini"), QSettings.Format.IniFormat)
        window = MainWindow(Preferences(store), model=model, persist=False)
        try:
            window.resize(*size)
            window.show()
            if image_path and not window.open_path(image_path):
                print(f"cds-desktop: {window.progress.error.text()}", file=sys.stderr)
                return 1
            if demo_mask:
                paint_demo_mask(window, image_path)
            if values:
                window.prompt.set_values(values)
            _settle(app)
            data = _png_bytes(window.grab().toImage())
            atomic_write(Path(out_path), lambda f: f.write(data))
        finally:
            window.state.undo.setClean()
            window.close()
            window.shutdown()
            window.deleteLater()
            _settle(app, 0.05)
    print(f"screenshot written to {out_path}")
    return 0


def paint_demo_mask(window, image_path: str | os.PathLike | None = None) -> None:
    """Mask the active layer for screenshots and docs: ``<image>_mask.png`` next to the
    image when it exists and fits, else an ellipse over the middle."""
    import numpy as np
    from PIL import Image

    from . import masking

    layer = window.state.active_layer
    if layer is None:
        return
    before = layer.mask.copy()
    w, h = layer.width, layer.height
    sample = Path(image_path).with_name(Path(image_path).stem + "_mask.png") if image_path else None
    if sample is not None and sample.is_file():
        with Image.open(sample) as im:
            painted = np.array(im.convert("L"))
    else:
        painted = None
    if painted is not None and painted.shape == layer.mask.shape:
        layer.mask[...] = painted
        box = masking.full_box(layer.mask)
    else:
        box = masking.fill_shape(
            layer.mask, (w // 5, h // 5, w - w // 5, h - h // 5), ellipse=True, subtract=False
        )
    window.state.maskChanged.emit(layer.uid, box)
    window.state.commit_mask(layer.uid, box, before, "Demo mask")


def _settle(app, seconds: float = 0.4) -> None:
    """Let layouts, fits and repaints finish: process events for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def _png_bytes(image) -> bytes:
    from PyQt6.QtCore import QBuffer, QIODevice

    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")
    return bytes(buf.data())


__all__ = ["main", "screenshot"]
