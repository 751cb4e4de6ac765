"""The one logging and console set-up of every entry point (app, cds-edit, --serve, --self-test).

* :func:`prepare_console` runs first: it gives a windowed Windows/macOS app (where
  ``sys.stdout``/``sys.stderr`` are ``None``) harmless stand-ins, and makes output that is
  redirected to a file or a pipe UTF-8, so a non-Latin prompt never ends in
  ``UnicodeEncodeError`` (Windows would otherwise use the ANSI code page).
* :func:`setup_logging` puts one handler on the root logger that writes to whatever
  ``sys.stderr`` is at the time of the message, and quiets the chatty libraries.
* :func:`setup_file_logging`: the desktop app also logs to a file in the platform's log folder
  (platformdirs' ``user_log_dir``, e.g. ``~/.local/state/cds-desktop/log/cds-desktop.log`` on
  Linux); messages that say "details are in the log" name that file (:func:`name_log`).
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import sys
import warnings
from pathlib import Path

APP_NAME = "cds-desktop"
LOG_MARK = "details are in the log"

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


class _FileHandler(logging.handlers.RotatingFileHandler):
    """The app's log file (a type of its own, so it is found and never added twice)."""


def setup_file_logging(folder: str | os.PathLike | None = None) -> Path | None:
    """Also log (INFO and up, with tracebacks) to ``cds-desktop.log`` in ``folder`` (default:
    the platform's user log folder); 1 MB, 3 old files kept. Returns the file, or None
    when it cannot be created (a warning goes to stderr; the app still runs)."""
    root = logging.getLogger()
    current = log_file()
    if current is not None:
        return current
    if folder is None:
        import platformdirs

        folder = platformdirs.user_log_dir(APP_NAME, appauthor=False)
    path = Path(folder) / f"{APP_NAME}.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = _FileHandler(path, maxBytes=1_000_000, backupCount=3, encoding="utf-8")
    except OSError as exc:
        logging.getLogger(__name__).warning("no log file (%s): %s", path, exc)
        return None
    handler.setLevel(logging.INFO)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    )
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return path


def stop_file_logging() -> None:
    """Remove (and close) the log file handler."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _FileHandler)]:
        root.removeHandler(handler)
        handler.close()


def log_file() -> Path | None:
    """The app's log file, when one is set up."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _FileHandler):
            return Path(handler.baseFilename)
    return None


def name_log(message: str) -> str:
    """``message`` with "details are in the log" saying which log: the file, or the terminal."""
    if LOG_MARK not in message:
        return message
    path = log_file()
    where = f"{LOG_MARK} ({path})" if path else f"{LOG_MARK} (printed in the terminal)"
    return message.replace(LOG_MARK, where, 1)


def tail(path: Path | None, max_chars: int = 8000) -> str:
    """The end of the log file from its last ERROR record on (the traceback of the problem
    just shown), for a dialog's "Show details"; "" when there is no log file."""
    if path is None:
        return ""
    for handler in logging.getLogger().handlers:
        handler.flush()
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_chars))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = text.splitlines(keepends=True)
    errors = [i for i, line in enumerate(lines) if " ERROR " in line or " CRITICAL " in line]
    return "".join(lines[errors[-1] :]) if errors else text
