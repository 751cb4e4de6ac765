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
    return load_model("tiny-random", device="cpu")
