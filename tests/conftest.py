"""Shared fixtures: the tiny random pipeline (a test fixture, random weights) loaded once."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def tiny_model():
    import torch

    from cds_desktop.engine.models import load_model

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    # the torch VAE: engine tests compare edits bit for bit; the ONNX backend (the CPU default)
    # has its own tests (tests/engine/test_onnx_vae.py)
    return load_model("tiny-random", device="cpu", vae_backend="torch")


@pytest.fixture(autouse=True)
def _restore_root_logger():
    """Entry points under test call cds_desktop.logs.setup_logging (a stderr handler on the
    root logger); each test gets the root logger back as it was."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
