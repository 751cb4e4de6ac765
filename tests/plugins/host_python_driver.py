"""Runs under a *host* Python (pyenv's 3.8 ... 3.13, see test_host_pythons.py), not pytest's:

    python host_python_driver.py KRITA_PYKRITA_DIR GIMP_PLUGINS_DIR REPORT_JSON

KRITA_PYKRITA_DIR and GIMP_PLUGINS_DIR hold the plug-ins unpacked from the built zips. With
stand-ins for ``krita`` + PyQt5 (fake_krita.py, fake_qt.py) and ``gi`` (fake_gimp.py) it
loads each plug-in the way its host does (Krita: import the package, which registers the
docker; GIMP: import the script, which defines the procedure), and completes one edit per
plug-in against the bridge at $CDS_BRIDGE_PORT (token under $CDS_CONFIG_DIR): Krita through
the docker's panel for an 8-bit, 16-bit integer, 16-bit float and 32-bit float document,
GIMP through its procedure (again over TLS if $CDS_TEST_TLS_ADDRESS names a remote-mode
bridge, with the fingerprint in $CDS_TEST_TLS_FP); then Krita's "Check Bridge Connection"
action, against the bridge and against a port where nothing listens. The report (JSON) says
what happened; any exception is recorded there, never raised. Standard library only.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fake_gimp  # noqa: E402
import fake_krita  # noqa: E402
import fake_qt  # noqa: E402

#: Engine settings that keep a tiny-random edit short (as conftest.FAST_SETTINGS).
FAST_SETTINGS = {"working_size": 32, "steps": 2, "seed": 3, "preview_every": 0}
SELECTION = (20, 14, 16, 12)
TIMEOUT_S = 60.0


def outside_selection_kept(node, source, box, selection) -> bool:
    """The new layer's pixels in ``box`` outside ``selection`` are the source's bytes."""
    x0, y0, w, h = box
    sx, sy, sw, sh = selection
    for y in range(y0, y0 + h):
        for x in range(x0, x0 + w):
            if sx <= x < sx + sw and sy <= y < sy + sh:
                continue
            if node.pixelData(x, y, 1, 1) != source.pixelData(x, y, 1, 1):
                return False
    return True


def krita_edit(factory, depth: str) -> dict:
    """One edit through the docker's panel, timer ticks fired by hand."""
    doc, layer = fake_krita.document_with_layer(64, 48, depth)
    doc.sel = fake_krita.FakeSelection.rectangle(*SELECTION)
    fake_krita_instance().document = doc
    before = dict(layer.pixels)
    docker = factory.cls()
    panel = docker.panel
    panel.source_edit.setText("a colourful gradient")
    panel.target_edit.setText("a red dog")
    panel.steps_spin.setValue(2)
    panel.extra_settings = dict(FAST_SETTINGS)
    ended = []
    panel.finished.connect(lambda ok, text: ended.append((ok, text)))
    panel.edit_button.click()
    deadline = time.monotonic() + TIMEOUT_S
    while not ended and panel._timer.isActive() and time.monotonic() < deadline:
        panel._timer.timeout.emit()
        time.sleep(0.02)
    panel.shutdown()
    result = {"finished": ended[0] if ended else None, "status": panel.status.text()}
    new = [node for node in doc.root.childNodes() if node is not layer]
    result["layers"] = [node.name() for node in doc.root.childNodes()]
    if new and panel.session is not None and panel.session.crop is not None:
        box = tuple(panel.session.crop.box)
        result["depth"] = new[0].colorDepth()
        result["outside_kept"] = outside_selection_kept(new[0], layer, box, SELECTION)
        result["inside_changed"] = new[0].pixelData(*SELECTION) != layer.pixelData(*SELECTION)
    result["source_untouched"] = layer.pixels == before and layer.writes == 0
    return result


def check_bridge(extension) -> list:
    """Krita's "Check Bridge Connection": returns at once, the timer shows the answer."""
    shown = fake_qt.QMessageBox.shown
    count = len(shown)
    extension.check_bridge()
    returned_at_once = extension.check is not None  # the ping runs on a worker thread
    deadline = time.monotonic() + TIMEOUT_S
    while extension.check_timer.isActive() and time.monotonic() < deadline:
        extension.check_timer.timeout.emit()
        time.sleep(0.02)
    return [returned_at_once, shown[count:]]


def fake_krita_instance():
    import krita

    return krita.Krita.instance()


def run_krita(folder: str, report: dict) -> None:
    fake_qt.install()
    sys.modules["krita"] = fake_krita.make_krita_module()
    sys.path.insert(0, folder)
    import cds_krita  # registers the docker factory and the extension, as in Krita

    instance = fake_krita_instance()
    report["krita_registered"] = [factory.id for factory in instance.docker_factories]
    report["krita_binding"] = sys.modules["cds_krita.qt"].BINDING
    report["krita_module"] = os.path.dirname(cds_krita.__file__)
    report["krita_edits"] = {
        depth: krita_edit(instance.docker_factories[0], depth)
        for depth in ("U8", "U16", "F16", "F32")
    }
    extension = instance.extensions[0]
    report["krita_check_bridge"] = check_bridge(extension)
    port = os.environ["CDS_BRIDGE_PORT"]
    os.environ["CDS_BRIDGE_PORT"] = "1"  # nothing listens there
    try:
        report["krita_check_no_bridge"] = check_bridge(extension)
    finally:
        os.environ["CDS_BRIDGE_PORT"] = port


def run_gimp(folder: str, report: dict) -> None:
    gi, modules = fake_gimp.make_modules()
    sys.modules.update(modules)
    plugin_dir = os.path.join(folder, "cds_gimp")
    sys.path.insert(0, plugin_dir)
    import cds_gimp

    report["gimp_module"] = os.path.dirname(cds_gimp.__file__)
    cds_gimp.EditParams.settings = lambda self: dict(FAST_SETTINGS, mode=self.mode)
    image = fake_gimp.Image(64, 48)
    source = fake_gimp.Layer("Source", 64, 48)
    for y in range(48):
        for x in range(64):
            k = (y * 64 + x) * 4
            source.buffer.data[k : k + 4] = bytes(fake_krita.gradient(x, y))
    image.layers = [source]
    image.select_rectangle(*SELECTION)
    before = bytes(source.buffer.data)
    plugin = cds_gimp.CdsGimp()
    report["gimp_procedures"] = plugin.do_query_procedures()
    procedure = plugin.do_create_procedure(cds_gimp.PROC_NAME)
    config = fake_gimp.Config(
        source="a colourful gradient",
        target="a red dog",
        mode="cds",
        steps=2,
        bridge="",
        fingerprint="",
    )
    status, error = procedure.run_func(
        procedure, fake_gimp.RunMode.NONINTERACTIVE, image, [source], config, None
    )
    report["gimp_status"] = str(status)
    report["gimp_message"] = getattr(error, "message", None)
    report["gimp_layers"] = [layer.get_name() for layer in image.layers]
    report["gimp_source_untouched"] = bytes(source.buffer.data) == before
    tls_address = os.environ.get("CDS_TEST_TLS_ADDRESS")
    if tls_address:  # the same procedure against the remote-mode (TLS) bridge
        config.values.update(bridge=tls_address, fingerprint=os.environ["CDS_TEST_TLS_FP"])
        status, error = procedure.run_func(
            procedure, fake_gimp.RunMode.NONINTERACTIVE, image, [source], config, None
        )
        report["gimp_tls_status"] = str(status)
        report["gimp_tls_message"] = getattr(error, "message", None)


def main(argv: list) -> int:
    krita_dir, gimp_dir, out = argv[1:4]
    report = {"python": list(sys.version_info[:3])}
    for name, step, folder in (("krita", run_krita, krita_dir), ("gimp", run_gimp, gimp_dir)):
        try:
            step(folder, report)
        except BaseException:
            report[name + "_error"] = traceback.format_exc()
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
