"""Runs INSIDE Krita via ``kritarunner -s cds_krita_driver -f run OUT_DIR`` (see
test_krita_real.py, which copies this file next to the installed plug-in).

It imports the installed plug-in as Krita would (which registers its docker and extension),
builds a 64x48 8-bit RGBA document with a gradient layer moved by (4, 2), a layer above it
and a rectangular selection, then presses the plug-in's own Edit button and spins a Qt event
loop until the panel reports the end (the panel polls the bridge from a QTimer, exactly as
in the docker). Everything the test checks is written to OUT_DIR: report.json plus raw
pixelData dumps. Krita's Python is not pytest's: standard library and PyQt only.
"""

import json
import os
import traceback

W, H = 64, 48
OFFSET = (4, 2)
SELECTION = (20, 14, 16, 12)
TIMEOUT_MS = 60000


def gradient_bgra(width, height):
    """The test pattern in Krita's byte order (B, G, R, A); RGB as in fake_krita.gradient."""
    out = bytearray()
    for y in range(height):
        for x in range(width):
            r, g, b = (4 * x) % 256, (5 * y) % 256, (200 - 2 * x - y) % 256
            out += bytes((b, g, r, 255))
    return bytes(out)


def rect(r):
    return [r.x(), r.y(), r.width(), r.height()]


def make_document(krita):
    doc = krita.Krita.instance().createDocument(W, H, "cds-test", "RGBA", "U8", "", 72.0)
    root = doc.rootNode()
    source = doc.createNode("Source", "paintlayer")
    root.addChildNode(source, None)
    source.setPixelData(gradient_bgra(W, H), 0, 0, W, H)
    source.move(*OFFSET)
    top = doc.createNode("Top", "paintlayer")
    root.addChildNode(top, source)
    selection = krita.Selection()
    selection.select(*SELECTION, 255)
    doc.setSelection(selection)
    doc.refreshProjection()
    return doc, source


def colour_probe(doc, source, report, x=30, y=20):
    """The colour Krita renders at (x, y) and the RGBA the plug-in would send for it."""
    from cds_krita.logic import read_crop

    colour = doc.thumbnail(W, H).pixelColor(x, y)
    report["rendered_rgba"] = [colour.red(), colour.green(), colour.blue(), colour.alpha()]
    crop = read_crop(doc, source)
    k = ((y - crop.box.top) * crop.box.width + (x - crop.box.left)) * 4
    report["sent_rgba"] = list(crop.rgba[k : k + 4])


def run_panel(doc, source, report):
    from cds_krita.panel import CdsPanel
    from cds_krita.qt import BINDING, QtCore, exec_loop

    report["binding"] = BINDING
    panel = CdsPanel(lambda: (doc, source))
    panel.source_edit.setText("a colourful gradient")
    panel.target_edit.setText("a red dog")
    panel.steps_spin.setValue(2)
    panel.extra_settings = {"working_size": 32, "seed": 3, "preview_every": 0}
    loop = QtCore.QEventLoop()
    ended = []

    def on_finished(ok, text):
        ended.append((ok, text))
        loop.quit()

    panel.finished.connect(on_finished)
    QtCore.QTimer.singleShot(TIMEOUT_MS, loop.quit)
    panel.edit_button.click()
    if not ended:
        exec_loop(loop)
    report["finished"] = ended[0] if ended else None
    report["status"] = panel.status.text()
    session = panel.session
    report["box"] = list(session.crop.box) if session and session.crop else None
    panel.shutdown()


def docker_probe(report):
    """The docker Krita would create from the registered factory, and what its Edit does
    when no document is open in a window (the case under kritarunner)."""
    from cds_krita.docker import CdsDocker

    docker = CdsDocker()
    report["docker_title"] = docker.windowTitle()
    report["docker_has_panel"] = docker.widget() is docker.panel
    docker.panel.source_edit.setText("a")
    docker.panel.target_edit.setText("b")
    docker.panel.edit_button.click()
    report["docker_no_document"] = docker.panel.status.text()


def refusal_message(krita):
    """What the plug-in says about a 32-bit float document (it must refuse it)."""
    from cds_krita.logic import PluginError, read_crop

    doc = krita.Krita.instance().createDocument(8, 8, "f32", "RGBA", "F32", "", 72.0)
    layer = doc.createNode("Float", "paintlayer")
    doc.rootNode().addChildNode(layer, None)
    try:
        read_crop(doc, layer)
    except PluginError as exc:
        return str(exc)
    finally:
        doc.close()
    return None


def dump(doc, source, before, out_dir, report):
    layers = []
    for node in doc.rootNode().childNodes():
        pos = node.position()
        info = {"name": node.name(), "type": node.type(), "bounds": rect(node.bounds())}
        layers.append(dict(info, position=[pos.x(), pos.y()]))
        if node.type() == "paintlayer" and node.name() not in ("Source", "Top"):
            with open(os.path.join(out_dir, "new.bgra"), "wb") as f:
                f.write(bytes(node.pixelData(0, 0, W, H)))
    report["layers"] = layers
    report["source_bounds"] = rect(source.bounds())
    for name, data in (("before", before), ("after", bytes(source.pixelData(0, 0, W, H)))):
        with open(os.path.join(out_dir, f"source_{name}.bgra"), "wb") as f:
            f.write(data)


def run(args):
    out_dir = args[0]
    report = {"size": [W, H], "offset": list(OFFSET), "selection": list(SELECTION)}
    try:
        import cds_krita  # registers the docker factory and the extension, as in Krita
        import krita

        report["registered"] = cds_krita.krita is not None
        doc, source = make_document(krita)
        before = bytes(source.pixelData(0, 0, W, H))
        colour_probe(doc, source, report)
        run_panel(doc, source, report)
        dump(doc, source, before, out_dir, report)
        report["refusal"] = refusal_message(krita)
        docker_probe(report)
    except Exception:
        report["error"] = traceback.format_exc()
    tmp = os.path.join(out_dir, "report.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, os.path.join(out_dir, "report.json"))
