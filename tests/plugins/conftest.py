"""Fixtures for the plug-in tests: the plug-ins as built by tools/build_plugins.py (with the
bridge client vendored), and a real bridge server on a free port running tiny-random."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Engine settings that keep a tiny-random edit to a second or two on a CPU.
FAST_SETTINGS = {"working_size": 32, "steps": 2, "seed": 3, "preview_every": 0}


def load_build_tool():
    spec = importlib.util.spec_from_file_location("build_plugins", ROOT / "tools/build_plugins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def build_tool():
    return load_build_tool()


@pytest.fixture(scope="session")
def staged(tmp_path_factory, build_tool) -> dict[str, Path]:
    """Both plug-ins laid out as installed: {"krita": pykrita dir, "gimp": plug-ins dir}."""
    base = tmp_path_factory.mktemp("plugins")
    build_tool.stage_krita(base / "pykrita")
    build_tool.stage_gimp(base / "plug-ins")
    return {"krita": base / "pykrita", "gimp": base / "plug-ins"}


def import_from(folder: Path, name: str, prefixes: tuple[str, ...]):
    """Import ``name`` from ``folder`` afresh, forgetting modules named with ``prefixes``."""
    for mod in [m for m in sys.modules if m.split(".")[0] in prefixes]:
        del sys.modules[mod]
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


@pytest.fixture(scope="session")
def bridge(tmp_path_factory):
    """A running BridgeServer (port 0, tiny-random) whose token is in a temporary
    $CDS_CONFIG_DIR folder; yields (server, config_home)."""
    from cds_desktop.bridge import BridgeServer
    from cds_desktop.engine.jobs import JobQueue
    from plugin_bridge.client import TOKEN_FILE

    config_home = tmp_path_factory.mktemp("xdg-config")
    queue = JobQueue()
    server = BridgeServer(queue, port=0, model="tiny-random", token_file=config_home / TOKEN_FILE)
    server.start()
    try:
        yield server, config_home
    finally:
        server.stop()
        queue.shutdown()


@pytest.fixture(scope="session")
def tls_bridge(bridge):
    """The same bridge's remote mode: a second listener with TLS on the loopback address
    127.0.0.2 (tests never use this machine's other interfaces), same token and queue;
    yields (server, config_home)."""
    from cds_desktop.bridge import BridgeServer
    from cds_desktop.bridge.tls import ServerTLS

    plain, config_home = bridge
    tls, _ = ServerTLS.for_folder(config_home)
    server = BridgeServer(
        plain.queue, host="127.0.0.2", port=0, model="tiny-random",
        token_file=plain.token_file, tls=tls,
    )  # fmt: skip
    server.start()
    try:
        yield server, config_home
    finally:
        server.stop()
