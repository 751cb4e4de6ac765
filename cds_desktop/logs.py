"""Logging set-up shared by the command-line entry points (cds-edit, --serve, --self-test)."""

from __future__ import annotations

import logging
import os
import sys
import warnings

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
