"""The built plug-ins load and complete an edit on every Python their hosts embed.

Krita 5.0/5.1 embed Python 3.8, Krita 5.2 3.10, Krita 5.3/6.0 3.13; GIMP 3 uses the
system's Python (3.9+ on the distributions it ships for). tools/build_plugins.py builds
cds-krita.zip and cds-gimp.zip, they are unpacked as the hosts install them, and
host_python_driver.py runs under each of pyenv's interpreters: with stand-ins for
krita/PyQt5 and gi it imports the plug-ins (Krita: the package, which registers the docker;
GIMP: the script) and round-trips edits against the tiny-random bridge this pytest process
runs on 127.0.0.1. An interpreter pyenv lacks is skipped, saying which and how to add it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PYENV_ROOT = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
#: Host Pythons: Krita 5.0/5.1 (3.8), 5.2 (3.10), 5.3/6.0 (3.13); GIMP 3 (system 3.9+).
VERSIONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")
DEPTHS = ("U8", "U16", "F16", "F32")


def interpreter(version: str) -> Path | None:
    """pyenv's newest ``version``.x interpreter, or None."""
    found = []
    for folder in PYENV_ROOT.glob(f"versions/{version}.*"):
        parts = folder.name.split(".")
        python = folder / "bin" / "python"
        if len(parts) == 3 and parts[2].isdigit() and python.exists():
            found.append((int(parts[2]), python))
    return max(found)[1] if found else None


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory, build_tool) -> dict[str, Path]:
    """The built zips, unpacked as installed: {"krita": pykrita dir, "gimp": plug-ins dir}."""
    base = tmp_path_factory.mktemp("host-plugins")
    krita_zip, gimp_zip = build_tool.build(base / "dist")
    folders = {"krita": base / "pykrita", "gimp": base / "plug-ins"}
    for zip_path, folder in ((krita_zip, folders["krita"]), (gimp_zip, folders["gimp"])):
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(folder)
    return folders


@pytest.fixture(scope="module", params=VERSIONS)
def host_report(request, unpacked, bridge, tls_bridge, tmp_path_factory) -> dict:
    version = request.param
    python = interpreter(version)
    if python is None:
        pytest.skip(
            f"no Python {version} under {PYENV_ROOT}/versions: `pyenv install {version}` "
            "to check the plug-ins on it"
        )
    server, config_home = bridge
    out = tmp_path_factory.mktemp(f"py{version}") / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(
        CDS_CONFIG_DIR=str(config_home),
        CDS_BRIDGE_HOST="127.0.0.1",
        CDS_BRIDGE_PORT=str(server.port),
        CDS_TEST_TLS_ADDRESS=f"{tls_bridge[0].host}:{tls_bridge[0].port}",
        CDS_TEST_TLS_FP=tls_bridge[0].tls.fingerprint,
        PYTHONDONTWRITEBYTECODE="1",
    )
    cmd = [str(python), "-I", str(HERE / "host_python_driver.py")]
    cmd += [str(unpacked["krita"]), str(unpacked["gimp"]), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.exists(), f"Python {version} wrote no report:\n{proc.stderr[-3000:]}"
    report = json.loads(out.read_text())
    assert report["python"][:2] == [int(p) for p in version.split(".")]
    return report


def test_krita_plugin_loads_and_registers_its_docker(host_report, unpacked):
    assert "krita_error" not in host_report, host_report["krita_error"]
    assert host_report["krita_registered"] == ["cds_krita_docker"]
    assert host_report["krita_binding"] == "PyQt5"
    assert Path(host_report["krita_module"]).parent == unpacked["krita"]  # the built copy


@pytest.mark.parametrize("depth", DEPTHS)
def test_krita_panel_round_trips_an_edit(host_report, depth):
    assert "krita_error" not in host_report, host_report["krita_error"]
    edit = host_report["krita_edits"][depth]
    assert edit["finished"] is not None, f"no end within the timeout: {edit['status']}"
    ok, text = edit["finished"]
    assert ok and text.startswith("done"), text
    assert edit["layers"] == ["Source", "a red dog"] and edit["depth"] == depth
    assert edit["outside_kept"] and edit["inside_changed"] and edit["source_untouched"]


def test_krita_check_bridge_action_answers_without_blocking(host_report):
    """Tools > Scripts > CDS: Check Bridge Connection pings on a worker thread."""
    assert "krita_error" not in host_report, host_report["krita_error"]
    at_once, shown = host_report["krita_check_bridge"]
    assert at_once and len(shown) == 1, shown
    kind, title, text = shown[0]
    assert (kind, title) == ("information", "CDS Edit") and "bridge answered in" in text
    at_once, shown = host_report["krita_check_no_bridge"]
    assert at_once and [m[0] for m in shown] == ["warning"], shown
    assert "cds-desktop --serve" in shown[0][2] and "\n" not in shown[0][2]


def test_gimp_plugin_loads_and_round_trips_an_edit(host_report, unpacked):
    assert "gimp_error" not in host_report, host_report["gimp_error"]
    assert Path(host_report["gimp_module"]).parent == unpacked["gimp"]  # the built copy
    assert host_report["gimp_procedures"] == ["plug-in-cds-edit"]
    assert host_report["gimp_status"].endswith("SUCCESS"), host_report["gimp_message"]
    assert host_report["gimp_layers"] == ["a red dog", "Source"]
    assert host_report["gimp_source_untouched"]


def test_gimp_plugin_reaches_a_remote_bridge_over_tls(host_report):
    """The vendored client's TLS + pinning path (ssl module) on this host Python."""
    assert "gimp_error" not in host_report, host_report["gimp_error"]
    assert host_report["gimp_tls_status"].endswith("SUCCESS"), host_report["gimp_tls_message"]


@pytest.mark.parametrize(
    "path",
    ["plugin_bridge/krita/cds_krita/new.py", "plugin_bridge/new.py", "tests/plugins/fake_new.py"],
)
def test_ruff_checks_plugin_code_for_python_38(path):
    """The project's ruff configuration (what CI's ruff check uses) targets 3.8 for the
    plug-ins and their stand-ins: 3.10 syntax there is an error, elsewhere it is not."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (tools/setup.sh installs it)")
    code = "def f(x):\n    match x:\n        case 1:\n            return 2\n    return 0\n"

    def check(name: str) -> subprocess.CompletedProcess:
        cmd = [ruff, "check", "--no-cache", "--stdin-filename", name, "-"]
        return subprocess.run(cmd, input=code, cwd=ROOT, capture_output=True, text=True)

    plugin = check(path)
    assert plugin.returncode == 1 and "Python 3.8" in plugin.stdout, plugin.stdout
    assert check("cds_desktop/new.py").returncode == 0
