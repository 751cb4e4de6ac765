"""The GIMP 3 plug-in against a fake of the Gimp/Gegl calls it makes (fake_gimp.py),
imported as built by tools/build_plugins.py, talking to a real bridge (tiny-random)."""

from __future__ import annotations

import sys
import types

import pytest

from . import fake_gimp
from .conftest import FAST_SETTINGS, import_from
from .fake_krita import gradient

W, H = 64, 48
OFFSET = (4, 2)
SELECTION = (20, 14, 16, 12)
BOX = (4, 2, 48, 40)  # selection + 16 px margin, clipped to the layer (at 4,2) and canvas


@pytest.fixture(scope="module")
def gp(staged):
    """The plug-in module (with fake gi.repository) and the fake modules."""
    gi, modules = fake_gimp.make_modules()
    folder = staged["gimp"] / "cds_gimp"
    with pytest.MonkeyPatch.context() as mp:
        for name, module in modules.items():
            mp.setitem(sys.modules, name, module)
        mp.setattr(sys, "path", list(sys.path))  # the plug-in adds its own folder
        plugin = import_from(folder, "cds_gimp", ("cds_gimp", "cds_bridge"))
        yield types.SimpleNamespace(plugin=plugin, Gimp=modules["gi.repository.Gimp"], gi=gi)
    for name in [m for m in sys.modules if m.split(".")[0] in ("cds_gimp", "cds_bridge")]:
        del sys.modules[name]


@pytest.fixture
def connect(bridge, monkeypatch):
    server, config_home = bridge
    monkeypatch.setenv("CDS_CONFIG_DIR", str(config_home))
    monkeypatch.setenv("CDS_BRIDGE_PORT", str(server.port))
    return server


def make_image(select: bool = True):
    image = fake_gimp.Image(W, H)
    source = fake_gimp.Layer("Source", W, H)
    for y in range(H):
        for x in range(W):
            k = (y * W + x) * 4
            source.buffer.data[k : k + 4] = bytes(gradient(x, y))
    source.set_offsets(*OFFSET)
    top = fake_gimp.Layer("Top", W, H)
    image.layers = [top, source]
    if select:
        image.select_rectangle(*SELECTION)
    return image, source


def config(**overrides):
    values = dict(source="a colourful gradient", target="a red dog", mode="cds", steps=2)
    values.update(bridge="", fingerprint="")
    values.update(overrides)
    return fake_gimp.Config(**values)


def run(gp, image, drawables, cfg, mode=None):
    procedure = gp.plugin.CdsGimp().do_create_procedure(gp.plugin.PROC_NAME)
    mode = mode or fake_gimp.RunMode.NONINTERACTIVE
    return procedure.run_func(procedure, mode, image, drawables, cfg, None)


def fast(gp, monkeypatch):
    """Send the tiny-model settings with every edit (working size 32, seed 3)."""
    monkeypatch.setattr(
        gp.plugin.EditParams, "settings", lambda self: {**FAST_SETTINGS, "mode": self.mode}
    )


def test_registers_an_image_procedure_under_filters_ai(gp):
    plugin = gp.plugin.CdsGimp()
    assert plugin.do_query_procedures() == ["plug-in-cds-edit"]
    procedure = plugin.do_create_procedure("plug-in-cds-edit")
    assert procedure.menu_paths == ["<Image>/Filters/AI"]
    assert procedure.settings["image_types"] == ("RGB*",)
    assert list(procedure.arguments) == [
        "source",
        "target",
        "mode",
        "steps",
        "bridge",
        "fingerprint",
    ]
    assert gp.gi.versions == {"Gimp": "3.0", "GimpUi": "3.0", "Gegl": "0.4"}


def test_edit_inserts_a_new_layer_above_the_source_in_one_undo_group(gp, connect, monkeypatch):
    fast(gp, monkeypatch)
    image, source = make_image()
    before = bytes(source.buffer.data)
    status, error = run(gp, image, [source], config())
    assert status is fake_gimp.PDBStatusType.SUCCESS, error.message
    assert [layer.get_name() for layer in image.layers] == ["Top", "a red dog", "Source"]
    new = image.layers[1]
    assert new.offsets == BOX[:2] and (new.get_width(), new.get_height()) == BOX[2:]
    assert new.buffer.flushed == 1 and new.updates == [(0, 0, *BOX[2:])]
    assert image.undo_groups == 1 and image.undo_depth == 0 and image.insert_depths == [1]
    assert bytes(source.buffer.data) == before and source.writes == 0
    assert ("displays_flush",) in gp.Gimp.calls


def test_result_equals_source_outside_selection_and_differs_inside(gp, connect, monkeypatch):
    fast(gp, monkeypatch)
    image, source = make_image()
    status, error = run(gp, image, [source], config())
    assert status is fake_gimp.PDBStatusType.SUCCESS, error.message
    new = image.layers[1].buffer.data
    bx, by, bw, bh = BOX
    sx, sy, sw, sh = SELECTION
    changed = 0
    for y in range(by, by + bh):
        for x in range(bx, bx + bw):
            got = new[((y - by) * bw + x - bx) * 4 :][:4]
            src = bytes(gradient(x - OFFSET[0], y - OFFSET[1]))
            if sx <= x < sx + sw and sy <= y < sy + sh:
                changed += got != src
            else:
                assert got == src, (x, y)
    assert changed > 0, "the edit changed nothing inside the selection"


def test_without_selection_the_whole_layer_on_the_canvas_is_sent(gp):
    image, source = make_image(select=False)
    box, selected = gp.plugin.plan_box(image, source)
    assert box == (4, 2, 60, 46) and not selected
    rgba = gp.plugin.read_rgba(source, box)
    assert rgba[:4] == bytes(gradient(0, 0))  # image (4, 2) is layer pixel (0, 0)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("gray", "needs an RGB image"),
        ("two", "2 layers are selected"),
        ("group", "is a layer group"),
        ("channel", "not a layer"),
        ("outside", "does not overlap"),
        ("empty_prompt", "target prompt is empty"),
    ],
)
def test_refusals_are_one_line_errors_and_change_nothing(gp, setup, message):
    image, source = make_image()
    drawables, cfg = [source], config()
    if setup == "gray":
        image.base = fake_gimp.ImageBaseType.GRAY
    elif setup == "two":
        drawables = image.layers
    elif setup == "group":
        source.group = True
    elif setup == "channel":
        drawables = [image.selection]
    elif setup == "outside":
        image.selection.buffer.data[:] = bytes(W * H)
        image.select_rectangle(0, 0, 2, 2)
    elif setup == "empty_prompt":
        cfg = config(target="  ")
    status, error = run(gp, image, drawables, cfg)
    assert status is fake_gimp.PDBStatusType.EXECUTION_ERROR
    assert message in error.message and "\n" not in error.message
    assert len(image.layers) == 2 and image.undo_groups == 0 and source.writes == 0


def test_bridge_not_running_says_how_to_start_it(gp, monkeypatch, tmp_path):
    token = tmp_path / "bridge-token"
    token.write_text("x" * 64)
    monkeypatch.setenv("CDS_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("CDS_BRIDGE_PORT", "1")  # nothing listens on port 1
    image, source = make_image()
    status, error = run(gp, image, [source], config())
    assert status is fake_gimp.PDBStatusType.EXECUTION_ERROR
    assert "cds-desktop --serve" in error.message
    assert len(image.layers) == 2


def test_interactive_run_shows_the_dialog_and_cancel_does_nothing(gp, monkeypatch):
    image, source = make_image()
    monkeypatch.setattr(fake_gimp.Dialog, "answer", False)
    monkeypatch.setattr(fake_gimp.Dialog, "shown", [])
    status, _ = run(gp, image, [source], config(), mode=fake_gimp.RunMode.INTERACTIVE)
    assert status is fake_gimp.PDBStatusType.CANCEL
    assert fake_gimp.Dialog.shown == [
        ("CDS Edit", ["source", "target", "mode", "steps", "bridge", "fingerprint"])
    ]
    assert len(image.layers) == 2


def test_wrong_result_size_is_refused_before_any_undo_group(gp):
    image, source = make_image()
    png = gp.plugin.pngcodec.encode_png(8, 8, bytes(8 * 8 * 4))
    result = gp.plugin.proto.Message("result", "j1", parts={"image": png})

    class OneShotClient:
        def submit_edit(self, *args, **kwargs):
            return "j1"

        def events(self, job):
            yield result

    params = gp.plugin.EditParams("a", "b")
    with pytest.raises(gp.plugin.PluginError, match="expected 48x40"):
        gp.plugin.edit_layer(image, source, params, OneShotClient(), gp.plugin.Progress())
    assert image.undo_groups == 0 and len(image.layers) == 2
    assert ("progress_end",) in gp.Gimp.calls


def test_remote_bridge_over_tls_with_the_fingerprint(gp, tls_bridge, monkeypatch, tmp_path):
    """Bridge address + fingerprint arguments: TLS to 127.0.0.2, the right fingerprint
    works, a wrong one is one line and changes nothing."""
    server, config_home = tls_bridge
    monkeypatch.setenv("CDS_CONFIG_DIR", str(config_home))
    fast(gp, monkeypatch)
    address = f"{server.host}:{server.port}"
    wrong = ":".join(["AA"] * 32)
    image, source = make_image()
    status, error = run(gp, image, [source], config(bridge=address, fingerprint=wrong))
    assert status is fake_gimp.PDBStatusType.EXECUTION_ERROR
    assert "not the expected" in error.message and "\n" not in error.message
    assert len(image.layers) == 2
    fingerprint = server.tls.fingerprint.replace(":", "").lower()  # pasted any which way
    status, error = run(gp, image, [source], config(bridge=address, fingerprint=fingerprint))
    assert status is fake_gimp.PDBStatusType.SUCCESS, error.message
    assert [layer.get_name() for layer in image.layers] == ["Top", "a red dog", "Source"]
