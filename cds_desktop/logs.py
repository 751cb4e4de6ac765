"""The one logging and console set-up of every entry point (app, cds-edit, --serve, --self-test).

* :func:`prepare_console` runs first: it gives a windowed Windows/macOS app (where
  ``sys.stdout``/``sys.stderr`` are ``None``) harmless stand-ins, and makes output that is
  redirected to a file or a pipe UTF-8, so a non-Latin prompt never ends in
  ``UnicodeEncodeError`` (Windows would otherwise use the ANSI code page).
* :func:`setup_logging` puts one handler on the root logger that writes to whatever
  ``sys.stderr`` is at the time of the message, and quiets the chatty libraries.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import warnings

NOISY = ("transformers", "diffusers", "huggingface_hub", "torch.onnx", "onnxscript")
FORMAT = "%(levelname)s %(name)s: %(message)s"
TIMESTAMPED_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is *now* (survives redirection, e.g. under pytest);
    drops the record when there is no stderr at all (a windowed app)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        if sys.stderr is not None:
            super().emit(record)


def _safe_stream(stream):
    """``stream`` reconfigured so that writing any text works: UTF-8 when redirected (file or
    pipe), the console's own encoding with backslash escapes for what it cannot show."""
    reconfigure = getattr(stream, "reconfigure", None)
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("_", "-")
    if reconfigure is None or encoding in ("utf-8", "utf8"):
        return stream
    try:
        interactive = stream.isatty()
    except (OSError, ValueError):
        interactive = False
    try:
        if interactive:
            reconfigure(errors="backslashreplace")
        else:
            reconfigure(encoding="utf-8", errors="backslashreplace")
    except (OSError, ValueError, io.UnsupportedOperation):
        pass
    return stream


def prepare_console() -> None:
    """Make ``print``/``sys.stderr.write`` safe: see the module docstring. Idempotent."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:  # windowed app: no console attached
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
        else:
            _safe_stream(stream)


def setup_logging(level: int | str = logging.WARNING, *, timestamps: bool = False) -> None:
    """One stderr handler on the root logger at ``level`` or lower.

    Third-party libraries are quieted to errors unless ``level`` is DEBUG. Calling it again
    lowers the level if asked, and never adds a second handler.
    """
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
        level = level if isinstance(level, int) else logging.WARNING
    prepare_console()
    quiet = level > logging.DEBUG
    if quiet:
        # transformers configures its own logger from this variable when it is first imported
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        root.addHandler(handler)
    handler.setFormatter(logging.Formatter(TIMESTAMPED_FORMAT if timestamps else FORMAT))
    root.setLevel(min(root.level or level, level))
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.ERROR if quiet else logging.NOTSET)
    if quiet:
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*low_cpu_mem_usage.*")
