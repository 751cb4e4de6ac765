"""The Krita plug-in inside real Krita (Debian's krita 5.1, headless through kritarunner).

The built cds-krita.zip is installed with Krita's own "Import Python Plugin from File" code
into a temporary kritarunner data folder; krita_driver.py then imports the plug-in (which
registers its docker), makes a document and presses the panel's Edit button against a real
bridge server (tiny-random) running in this pytest process. The checks below read what the
driver dumped: layer stack, positions and raw pixelData bytes.

kritarunner looks for ``-s SCRIPT`` on Krita's Python path, which includes
``$XDG_DATA_HOME/kritarunner/pykrita``; ``-f FUNCTION`` is called with the positional
arguments as one list. It needs a display: QT_QPA_PLATFORM=offscreen.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .fake_krita import gradient

KRITARUNNER = shutil.which("kritarunner")
IMPORTER = Path("/usr/share/krita/pykrita/plugin_importer/plugin_importer.py")
HERE = Path(__file__).resolve().parent

pytestmark = [
    pytest.mark.krita,
    pytest.mark.skipif(
        KRITARUNNER is None,
        reason="kritarunner not installed (apt-get install krita); CI installs it",
    ),
]


def install_with_krita_importer(zip_path: Path, resources: Path) -> list[str]:
    """Krita's own plug-in importer (pure Python) unpacking our zip, as the menu item does."""
    spec = importlib.util.spec_from_file_location("krita_plugin_importer", IMPORTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    importer = module.PluginImporter(str(zip_path), str(resources), lambda plugin: True)
    return [plugin["name"] for plugin in importer.import_all()]


def krita_env(tmp: Path, config_home: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(
        HOME=str(tmp / "home"),
        XDG_DATA_HOME=str(tmp / "data"),
        XDG_CACHE_HOME=str(tmp / "cache"),
        XDG_RUNTIME_DIR=str(tmp / "runtime"),
        XDG_CONFIG_HOME=str(config_home),  # where the bridge token is
        QT_QPA_PLATFORM="offscreen",
        CDS_BRIDGE_PORT=str(port),
        PYTHONDONTWRITEBYTECODE="1",
    )
    for key in ("HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True, mode=0o700)
    return env


@pytest.fixture(scope="module")
def krita_run(tmp_path_factory, build_tool, bridge):
    """Install the plug-in, run the driver once; returns (report, out_dir)."""
    server, config_home = bridge
    tmp = tmp_path_factory.mktemp("krita")
    zip_path = build_tool.build(tmp / "dist")[0]
    resources = tmp / "data" / "kritarunner"  # Krita's resource folder for kritarunner
    resources.mkdir(parents=True)
    assert install_with_krita_importer(zip_path, resources) == ["cds_krita"]
    shutil.copyfile(HERE / "krita_driver.py", resources / "pykrita" / "cds_krita_driver.py")
    out = tmp / "out"
    out.mkdir()
    cmd = [KRITARUNNER, "-s", "cds_krita_driver", "-f", "run", str(out)]
    env = krita_env(tmp, config_home, server.port)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    report_file = out / "report.json"
    assert report_file.exists(), f"kritarunner wrote no report:\n{proc.stdout[-3000:]}"
    report = json.loads(report_file.read_text())
    assert "error" not in report, report["error"]
    return report, out


def pixels(out: Path, name: str) -> bytes:
    return (out / f"{name}.bgra").read_bytes()


def test_edit_finishes_through_the_panel_on_pyqt5(krita_run):
    report, _ = krita_run
    assert report["registered"] is True
    assert report["binding"] == "PyQt5"
    assert report["finished"] is not None, f"no end within the timeout: {report['status']}"
    ok, text = report["finished"]
    assert ok, text
    assert text.startswith("done") and "a red dog" in text


def test_new_layer_sits_directly_above_the_source_at_the_crop_box(krita_run):
    report, _ = krita_run
    paint = [layer for layer in report["layers"] if layer["type"] == "paintlayer"]
    assert [layer["name"] for layer in paint] == ["Background", "Source", "a red dog", "Top"]
    # selection (20,14,16,12) + 16 px margin, clipped to the layer moved to (4,2) and the canvas
    assert report["box"] == [4, 2, 48, 40]
    assert paint[2]["bounds"] == [4, 2, 48, 40]
    assert report["source_bounds"] == [4, 2, 64, 48]


def test_source_layer_is_untouched(krita_run):
    _, out = krita_run
    assert pixels(out, "source_before") == pixels(out, "source_after")


def test_plugin_sends_the_colours_krita_renders(krita_run):
    """Canvas pixel (30, 20) is layer pixel (26, 18) after the move by (4, 2): the RGBA the
    plug-in sends there must be the colour Krita draws (so the BGRA swap is right)."""
    report, _ = krita_run
    ox, oy = report["offset"]
    expected = list(gradient(30 - ox, 20 - oy))
    assert report["rendered_rgba"] == expected
    assert report["sent_rgba"] == expected


def test_result_equals_source_outside_selection_and_differs_inside(krita_run):
    report, out = krita_run
    new, source = pixels(out, "new"), pixels(out, "source_after")
    w, h = report["size"]
    bx, by, bw, bh = report["box"]
    sx, sy, sw, sh = report["selection"]
    inside_changed = 0
    for y in range(h):
        for x in range(w):
            k = (y * w + x) * 4
            in_box = bx <= x < bx + bw and by <= y < by + bh
            in_sel = sx <= x < sx + sw and sy <= y < sy + sh
            if not in_box:
                assert new[k : k + 4] == b"\x00\x00\x00\x00", (x, y)
            elif not in_sel:
                assert new[k : k + 4] == source[k : k + 4], (x, y)
            else:
                inside_changed += new[k : k + 4] != source[k : k + 4]
    assert inside_changed > 0, "the edit changed nothing inside the selection"


def test_float_documents_are_refused_with_a_clear_message(krita_run):
    report, _ = krita_run
    assert report["refusal"] is not None
    assert "8-bit RGBA" in report["refusal"] and "F32" in report["refusal"]


def test_docker_builds_and_explains_a_missing_document(krita_run):
    report, _ = krita_run
    assert report["docker_title"] == "CDS Edit" and report["docker_has_panel"] is True
    assert report["docker_no_document"].startswith("no open document")
