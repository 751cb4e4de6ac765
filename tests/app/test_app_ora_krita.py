"""The .ora this app writes (with masks, result links and history) opens in real Krita
(Debian's krita, headless through kritarunner) with its layers as they were."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from cds_desktop.app.documents import Document, EditRecord, Layer, write_ora

KRITARUNNER = shutil.which("kritarunner")

pytestmark = [
    pytest.mark.krita,
    pytest.mark.skipif(
        KRITARUNNER is None, reason="kritarunner not installed (apt-get install krita)"
    ),
]

PROBE = """
import json
def run(args):
    from krita import Krita
    doc = Krita.instance().openDocument(args[0])
    report = {"opened": doc is not None}
    if doc is not None:
        report["size"] = [doc.width(), doc.height()]
        report["layers"] = [
            [n.name(), n.type(), n.bounds().x(), n.bounds().y(), n.visible(),
             round(n.opacity() / 255, 2)]
            for n in doc.rootNode().childNodes()
        ]
        doc.close()
    with open(args[1], "w") as f:
        json.dump(report, f)
"""


def test_krita_opens_an_ora_with_the_cds_extension(tmp_path):
    rng = np.random.default_rng(1)
    source = Layer("source", rng.integers(0, 256, (40, 48, 4), np.uint8), x=4, y=2)
    source.mask[5:20, 5:30] = 255
    result = Layer(
        "a blue circle (seed 0)",
        rng.integers(0, 256, (40, 48, 4), np.uint8),
        x=4,
        y=2,
        opacity=0.5,
        source_uid=source.uid,
        history_id=1,
    )
    record = EditRecord(
        1,
        "a red circle",
        "a blue circle",
        {"seed": 0},
        "m",
        1.0,
        result.uid,
        rng.integers(0, 256, (8, 8, 3), np.uint8),
    )
    path = tmp_path / "edited.ora"
    write_ora(Document(56, 44, [source, result], history=[record]), path)

    scripts = tmp_path / "data" / "kritarunner" / "pykrita"
    scripts.mkdir(parents=True)
    (scripts / "cds_ora_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    for key, name in (
        ("HOME", "home"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_RUNTIME_DIR", "runtime"),
        ("XDG_CONFIG_HOME", "config"),
    ):
        env[key] = str(tmp_path / name)
        (tmp_path / name).mkdir(exist_ok=True, mode=0o700)
    env["QT_QPA_PLATFORM"] = "offscreen"
    # Krita embeds Debian's Python, which takes its home from the first `python3` on PATH: a
    # pyenv or venv folder first there (as under `pyenv exec`) hides Debian's PyQt5 from it
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [KRITARUNNER, "-s", "cds_ora_probe", "-f", "run", str(path), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.exists(), f"kritarunner wrote no report:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    report = json.loads(out.read_text())
    assert report["opened"] and report["size"] == [56, 44]
    assert report["layers"] == [
        ["source", "paintlayer", 4, 2, True, 1.0],
        ["a blue circle (seed 0)", "paintlayer", 4, 2, True, 0.5],
    ]
