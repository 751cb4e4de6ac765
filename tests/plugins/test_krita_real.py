"""The Krita plug-in inside real Krita (Debian's krita 5.1, headless through kritarunner).

The built cds-krita.zip is installed with Krita's own "Import Python Plugin from File" code
into a temporary kritarunner data folder; krita_driver.py then imports the plug-in (which
registers its docker), makes one document per colour depth (8/16-bit integer, 16/32-bit
float RGBA, Krita's default profiles) and presses the panel's Edit button against a real
bridge server (tiny-random) running in this pytest process. The checks below read what the
driver dumped: layer stack, positions, colour spaces and raw pixelData bytes.

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

import numpy as np
import pytest

from .fake_krita import gradient
from .pixel_reference import as_rgba, model_bytes

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
        CDS_CONFIG_DIR=str(config_home),  # where the bridge token is
        QT_QPA_PLATFORM="offscreen",
        CDS_BRIDGE_PORT=str(port),
        PYTHONDONTWRITEBYTECODE="1",
    )
    # Krita embeds Debian's Python, which takes its home from the first `python3` on PATH: a
    # pyenv or venv folder first there (as under `pyenv exec`) hides Debian's PyQt5 from it
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
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
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    report_file = out / "report.json"
    assert report_file.exists(), f"kritarunner wrote no report:\n{proc.stdout[-3000:]}"
    report = json.loads(report_file.read_text())
    assert "error" not in report, report["error"]
    return report, out


DEPTHS = ("U8", "U16", "F16", "F32")
PIXEL_BYTES = {"U8": 4, "U16": 8, "F16": 8, "F32": 16}


def pixels(out: Path, depth: str, name: str) -> bytes:
    return (out / f"{depth}_{name}.raw").read_bytes()


@pytest.mark.parametrize("depth", DEPTHS)
def test_edit_finishes_through_the_panel_on_pyqt5(krita_run, depth):
    report, _ = krita_run
    assert report["registered"] is True
    run = report["depths"][depth]
    assert run["binding"] == "PyQt5"
    assert run["finished"] is not None, f"no end within the timeout: {run['status']}"
    ok, text = run["finished"]
    assert ok, text
    assert text.startswith("done") and "a red dog" in text


@pytest.mark.parametrize("depth", DEPTHS)
def test_new_layer_sits_directly_above_the_source_at_the_crop_box(krita_run, depth):
    run = krita_run[0]["depths"][depth]
    paint = [layer for layer in run["layers"] if layer["type"] == "paintlayer"]
    assert [layer["name"] for layer in paint] == ["Background", "Source", "a red dog", "Top"]
    # selection (20,14,16,12) + 16 px margin, clipped to the layer moved to (4,2) and the canvas
    assert run["box"] == [4, 2, 48, 40]
    assert paint[2]["bounds"] == [4, 2, 48, 40]
    assert run["source_bounds"] == [4, 2, 64, 48]
    assert (paint[2]["depth"], paint[2]["profile"]) == (depth, run["profile"])


@pytest.mark.parametrize("depth", DEPTHS)
def test_source_layer_is_untouched(krita_run, depth):
    _, out = krita_run
    assert pixels(out, depth, "source_before") == pixels(out, depth, "source_after")


def test_default_profiles_are_srgb_for_8_bits_and_linear_above(krita_run):
    profiles = {d: krita_run[0]["depths"][d]["profile"] for d in DEPTHS}
    assert profiles == {
        "U8": "sRGB-elle-V2-srgbtrc.icc",
        "U16": "sRGB-elle-V2-g10.icc",
        "F16": "sRGB-elle-V2-g10.icc",
        "F32": "sRGB-elle-V2-g10.icc",
    }


@pytest.mark.parametrize("depth", DEPTHS)
def test_plugin_sends_the_colours_krita_renders(krita_run, depth):
    """Canvas pixel (30, 20) is layer pixel (26, 18) after the move by (4, 2): the 8-bit
    sRGB the plug-in sends there must be the colour Krita itself renders (Krita's own colour
    conversion: so the channel order and the profile's curve are read right)."""
    run = krita_run[0]["depths"][depth]
    rendered, sent = np.array(run["rendered_rgba"]), np.array(run["sent_rgba"])
    if depth == "U8":
        ox, oy = krita_run[0]["offset"]
        assert run["rendered_rgba"] == run["sent_rgba"] == list(gradient(30 - ox, 20 - oy))
    else:  # Krita's LCMS conversion and ours may round differently by one
        assert np.abs(rendered - sent).max() <= 1, (rendered, sent)


@pytest.mark.parametrize("depth", DEPTHS)
def test_selection_reads_one_byte_a_pixel_at_every_depth(krita_run, depth):
    assert krita_run[0]["depths"][depth]["mask_probe"] == [255, 255]


@pytest.mark.parametrize("depth", DEPTHS)
def test_result_keeps_exact_source_pixels_outside_the_selection(krita_run, depth):
    """Outside the box: transparent; in the box outside the selection: the source's own
    bytes at the document's depth; inside: the bridge's 8-bit edit, which the new layer
    gives back exactly when converted to 8-bit sRGB again."""
    report, out = krita_run
    run = report["depths"][depth]
    new, source = pixels(out, depth, "new"), pixels(out, depth, "source_after")
    result = (out / f"{depth}_result.rgba").read_bytes()
    n = PIXEL_BYTES[depth]
    w, h = report["size"]
    bx, by, bw, bh = run["box"]
    sx, sy, sw, sh = report["selection"]
    linear = depth != "U8"
    inside_changed, exact_outside, inside_8bit = 0, 0, []
    for y in range(h):
        for x in range(w):
            k = (y * w + x) * n
            in_box = bx <= x < bx + bw and by <= y < by + bh
            in_sel = sx <= x < sx + sw and sy <= y < sy + sh
            if not in_box:
                assert new[k : k + n] == bytes(n), (x, y)
            elif not in_sel:
                assert new[k : k + n] == source[k : k + n], (x, y)
                exact_outside += 1
            else:
                inside_changed += new[k : k + n] != source[k : k + n]
                got = model_bytes(as_rgba(new[k : k + n], depth), depth, linear)[0]
                r = ((y - by) * bw + (x - bx)) * 4
                inside_8bit.append((list(got[:3]), list(result[r : r + 3]), (x, y)))
    assert exact_outside == bw * bh - sw * sh
    assert inside_changed > 0, "the edit changed nothing inside the selection"
    wrong = [item for item in inside_8bit if item[0] != item[1]]
    assert not wrong, f"{len(wrong)} selected pixels are not the 8-bit result: {wrong[:3]}"


def test_high_bit_depth_detail_and_hdr_values_survive_outside_the_selection(krita_run):
    """The test pattern holds what 8 bits cannot: the new layer has it, bit for bit."""
    report, out = krita_run
    bx, by, bw, bh = report["depths"]["F32"]["box"]
    w = report["size"][0]
    new = as_rgba(pixels(out, "F32", "new"), "F32").reshape(-1, w, 4)[by : by + bh, bx : bx + bw]
    assert (new[..., 0] == 4.0).sum() > 20  # HDR pixels kept in the box (outside selection)
    deep = as_rgba(pixels(out, "U16", "new"), "U16").reshape(-1, w, 4)[by : by + bh, bx : bx + bw]
    assert (deep[..., :3] % 257 != 0).mean() > 0.5  # values no 8-bit value converts to


def test_grey_documents_are_refused_with_a_clear_message(krita_run):
    report, _ = krita_run
    assert report["refusal"] is not None
    assert "GRAYA/U16" in report["refusal"] and "CDS needs RGB/Alpha" in report["refusal"]


def test_a_layer_converted_away_from_the_document_space_gets_a_new_layer_like_it(krita_run):
    probe = krita_run[0]["converted_layer"]
    assert probe["converted"] and probe["source"][1] == "U16"
    assert probe["new"] == probe["source"] and probe["bytes"] == 8 * 8 * 8


def test_docker_builds_and_explains_a_missing_document(krita_run):
    report, _ = krita_run
    assert report["docker_title"] == "CDS Edit" and report["docker_has_panel"] is True
    assert report["docker_no_document"].startswith("no open document")
