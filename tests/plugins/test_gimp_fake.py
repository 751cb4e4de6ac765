"""The GIMP 3 plug-in against a fake of the Gimp/Gegl calls it makes (fake_gimp.py),
imported as built by tools/build_plugins.py, talking to a real bridge (tiny-random)."""

from __future__ import annotations

import sys
import time
import types

import pytest

from . import fake_gimp
from .conftest import FAST_SETTINGS, import_from
from .fake_krita import gradient
from .pixel_reference import srgb_decode, srgb_encode
from .stalled_bridge import StalledBridge

#: The mnemonics of GimpUi.ProcedureDialog's own buttons in GIMP 3.0 (_Load Saved Settings,
#: _Save Settings, _Help, _Reset, _Cancel, _OK), as test_gimp_real.py reads them.
DIALOG_BUTTON_MNEMONICS = set("lshrco")

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
    assert gp.gi.versions == {"Gimp": "3.0", "GimpUi": "3.0", "Gegl": "0.4", "Babl": "0.1"}


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

        def poll(self, timeout):
            return result

    params = gp.plugin.EditParams("a", "b")
    with pytest.raises(gp.plugin.PluginError, match="expected 48x40"):
        gp.plugin.edit_layer(image, source, params, OneShotClient(), gp.plugin.Progress())
    assert image.undo_groups == 0 and len(image.layers) == 2
    assert ("progress_end",) in gp.Gimp.calls


def test_dialog_labels_have_distinct_mnemonics_free_of_the_dialog_buttons(gp):
    procedure = gp.plugin.CdsGimp().do_create_procedure(gp.plugin.PROC_NAME)
    labels = [spec[1] for spec in procedure.arguments.values()]
    letters = [label[label.index("_") + 1].lower() for label in labels]
    assert len(set(letters)) == len(letters), labels
    assert not set(letters) & DIALOG_BUTTON_MNEMONICS, labels


def test_progress_shows_in_gimps_progress_bar(gp, connect, monkeypatch):
    fast(gp, monkeypatch)
    del gp.Gimp.calls[:]
    image, source = make_image()
    status, error = run(gp, image, [source], config())
    assert status is fake_gimp.PDBStatusType.SUCCESS, error.message
    names = [call[0] for call in gp.Gimp.calls]
    assert names[0] == "progress_init" and "sending 48x40 pixels" in gp.Gimp.calls[0][1]
    steps = [call[1] for call in gp.Gimp.calls if call[0] == "progress_update"]
    assert steps and steps[-1] == 1.0 and steps == sorted(steps)
    assert names.index("progress_end") > names.index("progress_update")


# ----------------------------------------------------------------------------- precision
def fill(layer, pixel_at) -> None:
    """Write pixel_at(x, y) (a tuple in the layer's native format) into every pixel."""
    fmt = layer.buffer.format
    for y in range(layer.get_height()):
        for x in range(layer.get_width()):
            k = (y * layer.get_width() + x) * fmt.bpp
            layer.buffer.data[k : k + fmt.bpp] = fmt.struct.pack(*pixel_at(x, y))


def native(layer, x: int, y: int) -> tuple:
    fmt = layer.buffer.format
    k = (y * layer.get_width() + x) * fmt.bpp
    return fmt.struct.unpack(layer.buffer.data[k : k + fmt.bpp])


HIGH_BIT = {
    # 16-bit: values no 8-bit pixel has (odd multiples of 1/65535), alpha not 255*257
    "u16": lambda x, y: (1000 + 301 * x, 40000 - 257 * y + 1, 12345 + x * y, 65000 - x),
    # float linear: HDR values above 1, negative ones, alpha 0.75
    "float": lambda x, y: (4.0 + x / 7, -0.25 + y / 100, (x * y) / 997, 0.75),
}


@pytest.mark.parametrize("precision", ["u16", "float"])
def test_high_bit_depth_keeps_the_source_where_the_mask_is_0(gp, connect, monkeypatch, precision):
    """The new layer has the image's precision; outside the selection (mask 0) its pixels
    are the source's own, bit for bit, even values 8 bits cannot hold; inside the edit."""
    fast(gp, monkeypatch)
    image, source = make_image()
    image.precision = precision
    layer = fake_gimp.Layer("Source", W, H, fmt=image.layer_format())
    layer.set_offsets(*OFFSET)
    fill(layer, HIGH_BIT[precision])
    image.layers = [image.layers[0], layer]
    before = bytes(layer.buffer.data)
    status, error = run(gp, image, [layer], config())
    assert status is fake_gimp.PDBStatusType.SUCCESS, error.message
    new = image.layers[1]
    assert new.get_format() is layer.get_format(), new.get_format().name
    assert bytes(layer.buffer.data) == before and layer.writes == 0
    bx, by, bw, bh = BOX
    sx, sy, sw, sh = SELECTION
    changed = 0
    for y in range(by, by + bh):
        for x in range(bx, bx + bw):
            got = native(new, x - bx, y - by)
            src = native(layer, x - OFFSET[0], y - OFFSET[1])
            assert got[3] == src[3], ("alpha", x, y)
            if sx <= x < sx + sw and sy <= y < sy + sh:
                changed += got != src
            else:
                assert got == src, (x, y)
    assert changed > 0, "the edit changed nothing inside the selection"


class ScriptedClient:
    """Answers every edit with ``result`` (RGBA bytes of the box) as the bridge would."""

    def __init__(self, gp, box, rgba: bytes) -> None:
        png = gp.plugin.pngcodec.encode_png(box.width, box.height, rgba)
        self.result = gp.plugin.proto.Message("result", "j1", parts={"image": png})

    def submit_edit(self, *args, **kwargs):
        return "j1"

    def poll(self, timeout):
        return self.result


def test_feathered_selection_blends_by_the_mask_at_full_precision(gp):
    """Partly selected pixels get result + (1 - m) * (source - sent) in sRGB-encoded values
    (pixelformat.blend, the rule Krita uses too): with a black result, a linear float pixel
    of 4.0 (sent as 1.0) selected at m = 128/255 becomes decode((1 - m) * (encode(4) - 1))."""
    image = fake_gimp.Image(W, H, precision="float")
    layer = fake_gimp.Layer("Source", W, H, fmt=image.layer_format())
    fill(layer, lambda x, y: (4.0, 0.5, 0.25, 1.0))
    image.layers = [layer]
    image.select_rectangle(20, 14, 16, 12, value=255)
    image.select_rectangle(20, 14, 16, 2, value=128)  # a soft top edge
    params = gp.plugin.EditParams("a grey wall", "a black wall")
    request = gp.plugin.prepare(image, layer, params)
    box, sent = request.box, request.rgba
    black = bytearray(sent)  # what the engine returns: the source where the mask is 0
    for i, m in enumerate(request.mask):
        if m:
            black[i * 4 : i * 4 + 3] = b"\0\0\0"
    new = gp.plugin.edit_layer(
        image, layer, params, ScriptedClient(gp, box, bytes(black)), gp.plugin.Progress()
    )
    at = lambda x, y: native(new, x - box.left, y - box.top)  # noqa: E731
    assert at(25, 20) == (0.0, 0.0, 0.0, 1.0), "fully selected: the 8-bit result"
    assert at(25, 12) == (4.0, 0.5, 0.25, 1.0), "unselected: the source, bit for bit"
    keep = 1 - 128 / 255
    sent_linear = fake_gimp.babl_format("R'G'B'A u8").decode(sent[:4])  # same everywhere
    encoded = [
        min(max(1.0, srgb_encode(v)), max(0.0, keep * (srgb_encode(v) - srgb_encode(s))))
        for v, s in zip((4.0, 0.5, 0.25), sent_linear)
    ]
    assert at(25, 14)[:3] == pytest.approx(srgb_decode(encoded), rel=1e-5, abs=1e-6)
    red = srgb_decode(keep * (srgb_encode(4.0) - 1.0))
    assert at(25, 14)[0] == pytest.approx(red, rel=1e-5) and 0.1 < red < keep * 3.0


def test_layer_without_alpha_gets_a_result_layer_without_alpha(gp, connect, monkeypatch):
    fast(gp, monkeypatch)
    image = fake_gimp.Image(W, H, precision="u16")
    layer = fake_gimp.Layer("Source", W, H, fmt=image.layer_format(alpha=False))
    fill(layer, lambda x, y: (1001 + x, 2003 + y, 3005))
    image.layers = [layer]
    image.select_rectangle(*SELECTION)
    status, error = run(gp, image, [layer], config())
    assert status is fake_gimp.PDBStatusType.SUCCESS, error.message
    new = image.layers[0]
    assert new.get_format().name == "R'G'B' u16" and not new.has_alpha()
    assert native(new, 0, 0) == native(layer, *new.offsets)  # the box's corner: unselected


# ----------------------------------------------------------------------------- waiting
@pytest.fixture
def quick_watchdog(gp, monkeypatch, tmp_path):
    """Ping after 0.2 s of silence, give the pong 0.5 s; a token the fake bridges accept."""
    token = tmp_path / "bridge-token"
    token.write_text("t" * 64)
    monkeypatch.setenv("CDS_CONFIG_DIR", str(tmp_path))
    monkeypatch.setattr(gp.plugin.common, "QUIET_BEFORE_PING", 0.2)
    monkeypatch.setattr(
        gp.plugin, "make_client", lambda *args: gp.plugin.common.make_client("cds-gimp", 0.5)
    )


def test_a_bridge_that_stops_answering_ends_the_wait_with_a_message(
    gp, quick_watchdog, monkeypatch
):
    image, source = make_image()
    with StalledBridge("silent") as bridge:
        monkeypatch.setenv("CDS_BRIDGE_PORT", str(bridge.port))
        started = time.monotonic()
        status, error = run(gp, image, [source], config())
        took = time.monotonic() - started
    assert status is fake_gimp.PDBStatusType.EXECUTION_ERROR
    assert "the bridge stopped answering" in error.message and "\n" not in error.message
    assert bridge.received[:2] == ["edit", "ping"] and took < 5
    assert len(image.layers) == 2 and image.undo_groups == 0
    assert ("progress_end",) in gp.Gimp.calls


def test_a_bridge_killed_mid_edit_is_one_line_and_changes_nothing(gp, quick_watchdog, monkeypatch):
    image, source = make_image()
    with StalledBridge("close") as bridge:
        monkeypatch.setenv("CDS_BRIDGE_PORT", str(bridge.port))
        status, error = run(gp, image, [source], config())
    assert status is fake_gimp.PDBStatusType.EXECUTION_ERROR
    assert "closed the connection" in error.message and "\n" not in error.message
    assert len(image.layers) == 2 and image.undo_groups == 0


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
