"""Logging set-up shared by the entry points (the app, cds-edit, --serve, --self-test).

The desktop app also logs to a file in the platform's log folder (platformdirs'
``user_log_dir``, e.g. ``~/.local/state/cds-desktop/log/cds-desktop.log`` on Linux);
messages that say "details are in the log" name that file (:func:`name_log`).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import warnings
from pathlib import Path

APP_NAME = "cds-desktop"
LOG_MARK = "details are in the log"

NOISY = ("transformers", "diffusers", "huggingface_hub", "torch.onnx", "onnxscript")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is *now* (survives redirection, e.g. under pytest)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(level: int = logging.WARNING) -> None:
    """One stderr handler on the root logger; third-party libraries quieted to errors."""
    # transformers configures its own logger from this variable when it is first imported
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(min(root.level or level, level))
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.ERROR)
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
