"""Bridge fixtures: a tmp config dir (token file), a JobQueue on the tiny random model, a
running server on a free port (plain on 127.0.0.1, and with TLS as in remote mode on
127.0.0.2: tests never use this machine's other interfaces), and helpers to make tiny PNGs."""

from __future__ import annotations

import os

import pytest

from cds_desktop.bridge import BridgeServer, ServerLimits
from cds_desktop.bridge.tls import ServerTLS
from cds_desktop.engine.jobs import JobQueue
from plugin_bridge.config import CONFIG_ENV, TOKEN_ENV


@pytest.fixture(scope="session")
def config_home(tmp_path_factory):
    """$CDS_CONFIG_DIR -> a temporary folder for the whole bridge test session (honoured on
    every OS, so a test never touches the developer's real token)."""
    saved = {k: os.environ.get(k) for k in (CONFIG_ENV, TOKEN_ENV)}
    path = tmp_path_factory.mktemp("cds-config")
    os.environ[CONFIG_ENV] = str(path)
    os.environ.pop(TOKEN_ENV, None)
    yield path
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


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


#: the loopback address the TLS (remote-mode) tests listen on
TLS_HOST = "127.0.0.2"


@pytest.fixture(scope="session")
def server_tls(config_home):
    """The remote mode's TLS side: a certificate made like on first start (openssl or
    cryptography), beside the token."""
    tls, _created = ServerTLS.for_folder(config_home)
    return tls


@pytest.fixture(scope="module")
def tls_server(config_home, job_queue, server_tls):
    limits = ServerLimits(max_payload=1 << 20, max_pixels=4096, handshake_timeout=5.0)
    srv = BridgeServer(
        job_queue, host=TLS_HOST, port=0, model="tiny-random", limits=limits, tls=server_tls
    ).start()
    yield srv
    srv.stop()
