"""Runs INSIDE Krita via ``kritarunner -s cds_krita_driver -f run OUT_DIR`` (see
test_krita_real.py, which copies this file next to the installed plug-in).

It imports the installed plug-in as Krita would (which registers its docker and extension),
then for each colour depth (8 and 16-bit integer, 16 and 32-bit float RGBA, each document
with Krita's default profile for it) builds a 64x48 document with a pattern layer moved by
(4, 2), a layer above it and a rectangular selection, presses the plug-in's own Edit button
and spins a Qt event loop until the panel reports the end (the panel polls the bridge from a
QTimer, exactly as in the docker). Everything the test checks is written to OUT_DIR:
report.json plus raw pixelData dumps per depth (``<depth>_new.raw`` etc.). Krita's Python
is not pytest's: standard library and PyQt only.
"""

import json
import os
import struct
import traceback

W, H = 64, 48
OFFSET = (4, 2)
SELECTION = (20, 14, 16, 12)
TIMEOUT_MS = 60000
DEPTHS = ("U8", "U16", "F16", "F32")
PROBE = (30, 20)  # canvas pixel whose rendered colour is compared with what is sent


def pattern(depth, x, y):
    """R, G, B, A of the source layer at layer pixel (x, y), as numbers of ``depth``: the
    8-bit gradient of fake_krita, and at higher depths detail that 8 bits cannot hold
    (16-bit values off the multiples of 257; float fractions and HDR values of 4.0 away
    from the probe pixel)."""
    r, g, b = (4 * x) % 256, (5 * y) % 256, (200 - 2 * x - y) % 256
    if depth == "U8":
        return r, g, b, 255
    if depth == "U16":
        return r * 257 ^ (x % 7), g * 257 ^ (y % 5), b * 257 ^ 3, 65535 - (x + y) % 3
    hdr = 4.0 if (x + y) % 11 == 0 and (x, y) != (26, 18) else r / 255.0 + 1e-4
    return hdr, g / 255.0 + 3e-4, b / 255.0, 1.0 if (x, y) == (26, 18) else 1.0 - x % 3 / 7.0


def pack(depth, r, g, b, a):
    """One pixel in Krita's pixelData layout: B, G, R, A for integers, R, G, B, A floats."""
    if depth == "U8":
        return bytes((b, g, r, a))
    if depth == "U16":
        return struct.pack("=4H", b, g, r, a)
    return struct.pack("=4e" if depth == "F16" else "=4f", r, g, b, a)


def layer_pixels(depth):
    return b"".join(pack(depth, *pattern(depth, x, y)) for y in range(H) for x in range(W))


def rect(r):
    return [r.x(), r.y(), r.width(), r.height()]


def make_document(krita, depth):
    doc = krita.Krita.instance().createDocument(W, H, "cds-" + depth, "RGBA", depth, "", 72.0)
    root = doc.rootNode()
    source = doc.createNode("Source", "paintlayer")
    root.addChildNode(source, None)
    source.setPixelData(layer_pixels(depth), 0, 0, W, H)
    source.move(*OFFSET)
    top = doc.createNode("Top", "paintlayer")
    root.addChildNode(top, source)
    selection = krita.Selection()
    selection.select(*SELECTION, 255)
    doc.setSelection(selection)
    doc.refreshProjection()
    return doc, source


def colour_probe(doc, source, report):
    """The colour Krita renders at PROBE (its own conversion to 8-bit sRGB) and the RGBA
    the plug-in sends for that pixel (ours)."""
    from cds_krita.logic import read_crop

    x, y = PROBE
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
    return session.result_rgba if session else None


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
    """What the plug-in says about a 16-bit greyscale document (it must refuse it)."""
    from cds_krita.logic import PluginError, read_crop

    doc = krita.Krita.instance().createDocument(8, 8, "gray", "GRAYA", "U16", "", 72.0)
    layer = doc.createNode("Grey", "paintlayer")
    doc.rootNode().addChildNode(layer, None)
    try:
        read_crop(doc, layer)
    except PluginError as exc:
        return str(exc)
    finally:
        doc.close()
    return None


def converted_layer_probe(krita):
    """A 16-bit layer in an 8-bit document: the new layer must take the layer's space."""
    from cds_krita.logic import insert_result, read_crop

    doc = krita.Krita.instance().createDocument(8, 8, "mixed", "RGBA", "U8", "", 72.0)
    layer = doc.createNode("Deep", "paintlayer")
    doc.rootNode().addChildNode(layer, None)
    layer.setPixelData(pack("U8", 10, 200, 30, 255) * 64, 0, 0, 8, 8)
    converted = layer.setColorSpace("RGBA", "U16", "sRGB-elle-V2-g10.icc")
    try:
        crop = read_crop(doc, layer)
        new = insert_result(doc, layer, crop, crop.rgba, "converted")
        return {
            "converted": bool(converted),
            "source": [layer.colorModel(), layer.colorDepth(), layer.colorProfile()],
            "new": [new.colorModel(), new.colorDepth(), new.colorProfile()],
            "bytes": len(bytes(new.pixelData(0, 0, 8, 8))),
        }
    finally:
        doc.close()


def write(out_dir, name, data):
    with open(os.path.join(out_dir, name), "wb") as f:
        f.write(bytes(data))


def dump(doc, source, before, out_dir, prefix, report):
    layers = []
    for node in doc.rootNode().childNodes():
        pos = node.position()
        info = {"name": node.name(), "type": node.type(), "bounds": rect(node.bounds())}
        info.update(depth=node.colorDepth(), profile=node.colorProfile())
        layers.append(dict(info, position=[pos.x(), pos.y()]))
        if node.type() == "paintlayer" and node.name() not in ("Source", "Top"):
            write(out_dir, prefix + "new.raw", node.pixelData(0, 0, W, H))
    report["layers"] = layers
    report["source_bounds"] = rect(source.bounds())
    report["profile"] = source.colorProfile()
    write(out_dir, prefix + "source_before.raw", before)
    write(out_dir, prefix + "source_after.raw", source.pixelData(0, 0, W, H))
    report["mask_probe"] = list(bytes(doc.selection().pixelData(*SELECTION[:2], 2, 1)))


def edit_depth(krita, depth, out_dir):
    report = {}
    doc, source = make_document(krita, depth)
    try:
        before = bytes(source.pixelData(0, 0, W, H))
        colour_probe(doc, source, report)
        result = run_panel(doc, source, report)
        if result is not None:
            write(out_dir, depth + "_result.rgba", result)
        dump(doc, source, before, out_dir, depth + "_", report)
    finally:
        doc.close()
    return report


def run(args):
    out_dir = args[0]
    report = {"size": [W, H], "offset": list(OFFSET), "selection": list(SELECTION)}
    report["probe"] = list(PROBE)
    try:
        import cds_krita  # registers the docker factory and the extension, as in Krita
        import krita

        report["registered"] = cds_krita.krita is not None
        report["depths"] = {}
        for depth in DEPTHS:
            report["depths"][depth] = edit_depth(krita, depth, out_dir)
        report["refusal"] = refusal_message(krita)
        report["converted_layer"] = converted_layer_probe(krita)
        docker_probe(report)
    except Exception:
        report["error"] = traceback.format_exc()
    tmp = os.path.join(out_dir, "report.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, os.path.join(out_dir, "report.json"))
