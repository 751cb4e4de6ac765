"""Bridge fixtures: a tmp config dir (token file), a JobQueue on the tiny random model, a
running server on a free port, and helpers to make tiny PNGs."""

from __future__ import annotations

import os

import pytest

from cds_desktop.bridge import BridgeServer, ServerLimits
from cds_desktop.engine.jobs import JobQueue


@pytest.fixture(scope="session")
def config_home(tmp_path_factory):
    """XDG_CONFIG_HOME -> a temporary folder for the whole bridge test session."""
    old = os.environ.get("XDG_CONFIG_HOME")
    path = tmp_path_factory.mktemp("xdg-config")
    os.environ["XDG_CONFIG_HOME"] = str(path)
    yield path
    if old is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = old


@pytest.fixture(scope="session")
def job_queue(tiny_model):
    queue = JobQueue(loader=lambda spec, **kwargs: tiny_model)
    yield queue
    queue.shutdown()


@pytest.fixture(scope="module")
def server(config_home, job_queue):
    limits = ServerLimits(max_payload=1 << 20, max_pixels=4096, handshake_timeout=5.0)
    srv = BridgeServer(job_queue, port=0, model="tiny-random", limits=limits).start()
    yield srv
    srv.stop()
