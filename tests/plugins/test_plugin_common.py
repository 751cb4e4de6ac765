"""plugin_bridge/plugin_common.py: what the Krita and GIMP plug-ins share (geometry, the
edit's parameters and their checks, where the bridge is), and that both use it."""

from __future__ import annotations

import ast
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from plugin_bridge import plugin_common as common
from plugin_bridge.plugin_common import EditParams, PluginError, Rect

from .conftest import ROOT, import_from

PLUGIN_SOURCES = [
    ROOT / "plugin_bridge" / "plugin_common.py",
    ROOT / "plugin_bridge" / "gimp" / "cds_gimp" / "cds_gimp.py",
]


def test_rect_intersects_and_grows():
    box = Rect(10, 20, 30, 40)
    assert (box.right, box.bottom) == (40, 60)
    assert box.intersect(Rect(0, 0, 25, 100)) == (10, 20, 15, 40)
    assert box.intersect(Rect(100, 100, 5, 5)).empty
    assert box.grow(5) == (5, 15, 40, 50)


def test_context_margin_is_half_the_long_side_but_at_least_16():
    assert common.context_margin(Rect(0, 0, 16, 12)) == 16
    assert common.context_margin(Rect(0, 0, 100, 40)) == 50


def test_layer_name_is_the_target_prompt_on_one_short_line():
    assert common.layer_name("  a   red\ncar ") == "a red car"
    long = common.layer_name("word " * 40)
    assert len(long) == common.MAX_LAYER_NAME and long.endswith("\u2026")
    assert common.layer_name("   ") == "CDS edit"


def test_settings_carry_mode_and_steps_over_the_extra_settings():
    params = EditParams("a", "b", mode="dds", steps=7, extra_settings={"steps": 1, "seed": 3})
    assert params.settings() == {"steps": 7, "seed": 3, "mode": "dds"}
    pairs = EditParams("a", "b", extra_settings=(("seed", 4),))
    assert pairs.settings() == {"seed": 4, "mode": "cds", "steps": common.DEFAULT_STEPS}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (EditParams(" ", "a dog"), "source prompt is empty"),
        (EditParams("a cat", "\n"), "target prompt is empty"),
        (EditParams("a cat", "a dog", mode="sdedit"), "expected one of cds, dds"),
        (EditParams("a cat", "a dog", steps=0), "expected 1..2000"),
        (EditParams("a cat", "a dog", steps=2001), "expected 1..2000"),
        (EditParams("a cat", "a dog", steps="many"), "expected a whole number"),
    ],
)
def test_check_params_refuses_with_one_line(params, message):
    with pytest.raises(PluginError, match=message) as info:
        common.check_params(params)
    assert "\n" not in str(info.value)


def test_check_params_accepts_the_dialog_ranges():
    common.check_params(EditParams("a cat", "a dog", steps=common.MIN_STEPS))
    common.check_params(EditParams("a cat", "a dog", mode="dds", steps=common.MAX_STEPS))


def test_bridge_address_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("CDS_BRIDGE_HOST", raising=False)
    monkeypatch.delenv("CDS_BRIDGE_PORT", raising=False)
    assert common.bridge_address() == ("127.0.0.1", 47860)
    monkeypatch.setenv("CDS_BRIDGE_HOST", " 127.0.0.2 ")
    monkeypatch.setenv("CDS_BRIDGE_PORT", "5123")
    assert common.bridge_address() == ("127.0.0.2", 5123)
    for raw, message in (("http", "expected a port number"), ("70000", "in 1..65535")):
        monkeypatch.setenv("CDS_BRIDGE_PORT", raw)
        with pytest.raises(PluginError, match=message):
            common.bridge_address()


def test_clients_use_the_network_timeout(monkeypatch):
    monkeypatch.setenv("CDS_BRIDGE_PORT", "5124")
    client = common.make_client("test-client")
    assert (client.port, client.timeout, client.client_name) == (5124, 10.0, "test-client")
    assert not client.connected


def test_both_plugins_use_the_shared_definitions(staged):
    """The built plug-ins import these names from the vendored copy: no second definition."""
    krita = import_from(staged["krita"], "cds_krita.session", ("cds_krita",))
    logic = sys.modules["cds_krita.logic"]
    shared_krita = sys.modules["cds_krita.cds_bridge.plugin_common"]
    for name in ("Rect", "EditParams", "PluginError", "check_params", "layer_name"):
        assert getattr(logic, name) is getattr(shared_krita, name), name
    assert krita.bridge_address is shared_krita.bridge_address
    gimp_source = (staged["gimp"] / "cds_gimp" / "cds_gimp.py").read_text()
    tree = ast.parse(gimp_source)
    defined = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    shared = {"Rect", "EditParams", "PluginError", "check_params", "layer_name"}
    shared |= {"context_margin", "bridge_address", "blend", "composite", "compose_result"}
    assert not defined & shared, defined & shared


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: p.name)
def test_plugin_code_parses_as_python_3_8(path: Path):
    """Krita and GIMP may run an older Python than ours: no 3.9+ syntax."""
    source = path.read_text(encoding="utf-8")
    ast.parse(source, filename=str(path), feature_version=(3, 8))
    assert "from __future__ import annotations" in source  # `X | None` hints stay strings


# ----------------------------------------------------------------------------- Python 3.8
def python38() -> str | None:
    """A working Python 3.8 interpreter (pyenv's first: its shims may refuse), or None."""
    pyenv = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3.8")))
    for candidate in [*pyenv, shutil.which("python3.8")]:
        if candidate is None:
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 8))"],
            capture_output=True,
            text=True,
        )
        if probe.stdout.strip() == "True":
            return candidate
    return None


SMOKE_38 = """
import struct, sys
from plugin_bridge import plugin_common as c, pixelformat as pf
assert sys.version_info[:2] == (3, 8), sys.version
c.check_params(c.EditParams("a", "b", steps=3, extra_settings={"seed": 1}))
assert c.context_margin(c.Rect(0, 0, 100, 40)) == 50 and c.layer_name(" a  b ") == "a b"
fmt = pf.PixelFormat(pf.U16)
src, res = struct.pack("=8H", *range(1, 9)), struct.pack("=8H", *[9] * 8)
assert struct.unpack("=8H", pf.blend(src, res, res, bytes([0, 100]), fmt)) == (
    1, 2, 3, 4, 7, 7, 8, 8)
print("ok")
"""


def test_shared_module_runs_on_python_3_8():
    """Krita 5.1 on older systems and GIMP builds may bring Python 3.8."""
    interpreter = python38()
    if interpreter is None:
        pytest.skip("no Python 3.8 interpreter here (python3.8 or pyenv)")
    proc = subprocess.run(
        [interpreter, "-c", SMOKE_38], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_bridge_address_field_and_remote_settings(monkeypatch):
    """What a user types in a plug-in's Bridge field, and the remote-bridge environment."""
    for key in ("CDS_BRIDGE_HOST", "CDS_BRIDGE_PORT", "CDS_BRIDGE_FINGERPRINT", "CDS_BRIDGE_TLS"):
        monkeypatch.delenv(key, raising=False)
    assert common.parse_address("") == ("127.0.0.1", 47860)
    assert common.parse_address(" gpu-box ") == ("gpu-box", 47860)
    assert common.parse_address("10.0.0.5:5000") == ("10.0.0.5", 5000)
    assert common.parse_address("[fd00::5]:5001") == ("fd00::5", 5001)
    assert common.parse_address("fd00::5") == ("fd00::5", 47860)
    for bad, message in (("host:http", "not a port number"), ("h:0", "not in 1..65535"),
                         ("a b", "expected HOST or HOST:PORT")):  # fmt: skip
        with pytest.raises(PluginError, match=message):
            common.parse_address(bad)
    local = common.make_client("t")
    assert (local.host, local.tls, local.fingerprint) == ("127.0.0.1", False, None)
    remote = common.make_client("t", address="gpu-box:5000")
    assert (remote.host, remote.port, remote.tls) == ("gpu-box", 5000, True)  # not loopback
    fp = "ab" * 32
    pinned = common.make_client("t", address="127.0.0.2:5000", fingerprint=fp, token=" x ")
    assert pinned.tls and pinned.fingerprint == ":".join(["AB"] * 32) and pinned._token == "x"
    monkeypatch.setenv("CDS_BRIDGE_FINGERPRINT", fp)
    assert common.make_client("t", address="127.0.0.2").tls  # a fingerprint means TLS
    monkeypatch.delenv("CDS_BRIDGE_FINGERPRINT")
    monkeypatch.setenv("CDS_BRIDGE_TLS", "1")
    assert common.make_client("t").tls
    with pytest.raises(PluginError, match="not a SHA-256 fingerprint"):
        common.make_client("t", fingerprint="12:34")
