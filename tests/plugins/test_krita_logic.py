"""The Krita plug-in's pure logic and edit session against a fake Krita document.

The plug-in is imported as built by tools/build_plugins.py (vendored bridge client), not
from the source tree. The same code runs inside real Krita in test_krita_real.py.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from .conftest import FAST_SETTINGS, import_from
from .fake_krita import FakeNode, FakeSelection, deep_gradient, document_with_layer, gradient
from .pixel_reference import as_rgba, engine_result, model_bytes, model_float, srgb_decode


@pytest.fixture(scope="module")
def kp(staged):
    """The plug-in's modules: logic, session, and the vendored pngcodec/protocol."""
    session = import_from(staged["krita"], "cds_krita.session", ("cds_krita",))
    import cds_krita.logic as logic
    from cds_krita.cds_bridge import pngcodec, protocol

    return types.SimpleNamespace(logic=logic, session=session, png=pngcodec, proto=protocol)


def rgba_of(box, rgba_at=gradient) -> bytes:
    x0, y0, w, h = box
    return b"".join(bytes(rgba_at(x, y)) for y in range(y0, y0 + h) for x in range(x0, x0 + w))


# ----------------------------------------------------------------------------- reading
def test_selection_box_grows_by_margin_and_mask_is_the_selection(kp):
    doc, layer = document_with_layer(64, 48)
    doc.sel = FakeSelection.rectangle(20, 14, 16, 12)
    crop = kp.logic.read_crop(doc, layer)
    margin = kp.logic.context_margin(kp.logic.Rect(20, 14, 16, 12))
    assert margin == 16
    assert crop.box == (4, 0, 48, 42)  # top edge clipped to the canvas
    assert crop.rgba == rgba_of(crop.box)  # RGBA order, image coordinates
    mask = [crop.mask[j * 48 + i] for j in range(42) for i in range(48)]
    inside = [255 if 16 <= i < 32 and 14 <= j < 26 else 0 for j in range(42) for i in range(48)]
    assert mask == inside
    assert crop.layer_name == "Source"


def test_box_is_clipped_to_a_moved_layer_and_the_canvas(kp):
    doc, layer = document_with_layer(64, 48)
    layer.move(10, -6)  # content now covers x 10..73, y -6..41
    crop = kp.logic.read_crop(doc, layer)
    assert crop.box == (10, 0, 54, 42)
    assert crop.mask is None
    shifted = rgba_of(crop.box, lambda x, y: gradient(x - 10, y + 6))
    assert crop.rgba == shifted

    doc.sel = FakeSelection.rectangle(2, 30, 12, 6)  # partly left of the layer
    crop = kp.logic.read_crop(doc, layer)
    assert crop.box == (10, 14, 20, 28)


def test_no_selection_sends_the_whole_layer_on_the_canvas(kp):
    doc, layer = document_with_layer(40, 30)
    crop = kp.logic.read_crop(doc, layer)
    assert crop.box == (0, 0, 40, 30) and crop.mask is None


@pytest.mark.parametrize(
    ("depth", "profile", "linear"),
    [
        ("U8", None, False),
        ("U16", None, True),  # Krita's default 16-bit profile is linear (g10)
        ("U16", "sRGB-elle-V2-srgbtrc.icc", False),
        ("F16", None, True),
        ("F32", None, True),
        ("F32", "sRGB-elle-V2-srgbtrc.icc", False),
    ],
)
def test_deep_layers_are_sent_as_8bit_srgb_in_their_channel_order(kp, depth, profile, linear):
    doc, layer = document_with_layer(24, 20, depth, profile)
    doc.sel = FakeSelection.rectangle(6, 5, 8, 6)
    crop = kp.logic.read_crop(doc, layer)
    assert crop.raw == layer.pixelData(*crop.box)
    expected = model_bytes(as_rgba(crop.raw, depth), depth, linear)
    sent = np.frombuffer(crop.rgba, dtype=np.uint8).reshape(-1, 4)
    assert np.array_equal(sent, expected)


@pytest.mark.parametrize(
    ("model", "depth", "node_type", "message"),
    [
        ("GRAYA", "U16", "paintlayer", "GRAYA/U16: CDS needs RGB/Alpha"),
        ("RGBA", "F64", "paintlayer", "RGBA/F64"),
        ("CMYKA", "U8", "paintlayer", "CMYKA/U8"),
        ("LABA", "F32", "paintlayer", "LABA/F32"),
        ("RGBA", "U8", "vectorlayer", "select a paint layer"),
    ],
)
def test_refuses_layers_it_cannot_edit(kp, model, depth, node_type, message):
    doc, layer = document_with_layer(8, 8)
    layer._model, layer._depth, layer._type = model, depth, node_type
    with pytest.raises(kp.logic.PluginError, match=message):
        kp.logic.read_crop(doc, layer)
    with pytest.raises(kp.logic.PluginError, match="no active layer"):
        kp.logic.check_layer(None)


def test_refuses_selection_outside_the_layer_and_empty_layers(kp):
    doc, layer = document_with_layer(32, 32)
    layer.move(40, 0)  # entirely off the canvas
    with pytest.raises(kp.logic.PluginError, match="empty on the canvas"):
        kp.logic.read_crop(doc, layer)
    layer.move(-40, 0)
    doc.sel = FakeSelection.rectangle(100, 100, 4, 4)
    with pytest.raises(kp.logic.PluginError, match="does not overlap"):
        kp.logic.read_crop(doc, layer)


# ----------------------------------------------------------------------------- writing
def test_insert_result_adds_a_layer_above_the_source_at_the_box(kp):
    doc, layer = document_with_layer(16, 12)
    top = FakeNode("Top")
    doc.root.addChildNode(top, layer)
    before = dict(layer.pixels)
    box = kp.logic.Rect(3, 2, 4, 5)
    raw = layer.pixelData(*box)
    crop = kp.logic.Crop(box, b"", None, "Source", raw, kp.logic.depths.pixel_format(layer))
    rgba = bytes(range(4 * 4 * 5))
    new = kp.logic.insert_result(doc, layer, crop, rgba, "a dog")
    assert [n.name() for n in doc.root.childNodes()] == ["Source", "a dog", "Top"]
    expected = bytearray(rgba)  # colours from the result in B, G, R order, alpha the source's
    expected[0::4], expected[2::4], expected[3::4] = rgba[2::4], rgba[0::4], raw[3::4]
    assert new.pixelData(3, 2, 4, 5) == bytes(expected)
    assert new.pixelData(0, 0, 3, 1) == b"\x00" * 12  # transparent outside the box
    assert layer.pixels == before and layer.writes == 0
    assert doc.refreshes == 1
    with pytest.raises(kp.logic.PluginError, match="expected 4x5"):
        kp.logic.insert_result(doc, layer, crop, rgba[:-4], "short")


@pytest.mark.parametrize("depth", ["U8", "U16", "F16", "F32"])
def test_result_layer_has_the_source_depth_and_its_exact_pixels_outside_the_mask(kp, depth):
    doc, layer = document_with_layer(24, 20, depth)
    doc.sel = FakeSelection.rectangle(6, 5, 8, 6)
    doc.sel.values[(6, 5)] = 100  # one partly selected pixel
    crop = kp.logic.read_crop(doc, layer)
    sent = np.frombuffer(crop.rgba, dtype=np.uint8).reshape(-1, 4).astype(np.int64)
    mask = np.frombuffer(crop.mask, dtype=np.uint8)
    edit = np.tile([200, 30, 90, 0], (len(sent), 1))
    result = engine_result(sent, edit, mask)  # what the bridge sends back
    new = kp.logic.insert_result(doc, layer, crop, result.tobytes(), "edited")
    space = (new.colorModel(), new.colorDepth(), new.colorProfile())
    assert space == ("RGBA", depth, layer.colorProfile())
    bx, by, bw, bh = crop.box
    size = layer.pixel_bytes
    got, src = new.pixelData(*crop.box), layer.pixelData(*crop.box)
    for j in range(bh):
        for i in range(bw):
            k = (j * bw + i) * size
            if not crop.mask[j * bw + i]:
                assert got[k : k + size] == src[k : k + size], (bx + i, by + j)
    full = as_rgba(got, depth)[(7 - bx) + (6 - by) * bw]  # a fully selected pixel
    decoded = srgb_decode(np.array([200, 30, 90]) / 255)
    if depth == "U8":
        assert list(full[:3]) == [200, 30, 90]
    elif depth == "U16":
        assert list(full[:3]) == list(np.floor(decoded * 65535 + 0.5))
    else:
        assert np.allclose(full[:3], decoded, rtol=1e-3 if depth == "F16" else 1e-6)
    # the partly selected pixel: (1 - a) * source + a * edit, in sRGB-encoded values, up to
    # the 8-bit rounding of the engine's blend
    k, a = (6 - bx) + (5 - by) * bw, 100 / 255
    part, source = as_rgba(got, depth)[k], as_rgba(src, depth)[k]
    assert part[3] == source[3]
    linear = depth != "U8"
    encoded = [model_float(px, depth, linear) for px in (part, source)]
    ideal = (1 - a) * encoded[1] + a * np.array([200, 30, 90]) / 255
    assert np.abs(encoded[0] - ideal).max() <= 0.5 / 255 + (2e-3 if depth == "F16" else 1e-4)


def test_new_layer_takes_the_source_colour_space_when_it_differs_from_the_document(kp):
    doc, _ = document_with_layer(8, 8, "U8")
    deep = FakeNode("Deep", depth="U16")
    deep.fill(8, 8, deep_gradient("U16"))
    doc.root.addChildNode(deep, None)
    crop = kp.logic.read_crop(doc, deep)
    new = kp.logic.insert_result(doc, deep, crop, crop.rgba, "converted")
    assert new.colorDepth() == "U16" and new.colorProfile() == deep.colorProfile()
    assert len(new.pixelData(0, 0, 8, 8)) == 8 * 8 * 8


# ----------------------------------------------------------------------------- session
class ScriptedClient:
    """Stands in for BridgeClient: records the submission, replays scripted messages."""

    def __init__(self, messages) -> None:
        self.messages = list(messages)
        self.submitted: dict = {}
        self.cancelled: list[str] = []
        self.connected = True

    def submit_edit(self, image_png, source, target, mask_png=None, **kw):
        self.submitted = dict(image=image_png, source=source, target=target, mask=mask_png, **kw)
        return "job1"

    def poll(self, timeout=0.0):
        return self.messages.pop(0) if self.messages else None

    def cancel(self, job):
        self.cancelled.append(job)


def test_session_submits_crop_and_inserts_the_result(kp):
    doc, layer = document_with_layer(64, 48)
    doc.sel = FakeSelection.rectangle(20, 14, 16, 12)
    box = (4, 0, 48, 42)
    result = bytes([9, 8, 7, 255]) * (48 * 42)
    msg = kp.proto.Message
    client = ScriptedClient(
        [
            msg("queued", "job1", position=1),
            msg("progress", "other-job", step=1, total=2),
            msg("progress", "job1", step=1, total=2),
            msg("result", "job1", parts={"image": kp.png.encode_png(48, 42, result)}, elapsed=1.5),
        ]
    )
    params = kp.logic.EditParams("a cat", "a dog", mode="dds", steps=7)
    session = kp.session.EditSession(doc, layer, params)
    assert "48x42" in session.start(client).text
    sent = kp.png.decode_png(client.submitted["image"])
    assert (sent.width, sent.height) == (48, 42) and sent.rgba == rgba_of(box)
    assert client.submitted["settings"] == {"mode": "dds", "steps": 7}
    assert client.submitted["offset"] == (4, 0)
    assert kp.png.decode_png(client.submitted["mask"]).rgba[4 * (14 * 48 + 16)] == 255
    update = session.poll()
    assert session.state == "done" and update.finished and update.ok
    assert [n.name() for n in doc.root.childNodes()] == ["Source", "a dog"]
    got, src = session.new_layer.pixelData(*box), layer.pixelData(*box)
    for j in range(42):
        for i in range(48):
            k = (j * 48 + i) * 4
            inside = 16 <= i < 32 and 14 <= j < 26
            assert got[k : k + 4] == (bytes([7, 8, 9, 255]) if inside else src[k : k + 4])


def test_session_reports_errors_cancel_and_bad_results_without_adding_layers(kp):
    doc, layer = document_with_layer(16, 16)
    msg, params = kp.proto.Message, kp.logic.EditParams("a cat", "a dog")
    failing = ScriptedClient([msg("error", "job1", code="EDIT_FAILED", message="diverged")])
    session = kp.session.EditSession(doc, layer, params)
    session.start(failing)
    update = session.poll()
    assert session.state == "failed" and "EDIT_FAILED: diverged" in update.text

    cancelling = ScriptedClient([msg("error", "job1", code="CANCELLED", message="by client")])
    session = kp.session.EditSession(doc, layer, params)
    session.start(cancelling)
    session.cancel()
    assert cancelling.cancelled == ["job1"]
    assert session.poll().text == "cancelled" and session.state == "cancelled"

    wrong_size = kp.png.encode_png(8, 8, b"\x00" * 256)
    bad = ScriptedClient([msg("result", "job1", parts={"image": wrong_size})])
    session = kp.session.EditSession(doc, layer, params)
    session.start(bad)
    assert "expected 16x16" in session.poll().text and session.state == "failed"
    assert [n.name() for n in doc.root.childNodes()] == ["Source"]


def test_session_refuses_empty_prompts_before_sending(kp):
    doc, layer = document_with_layer(8, 8)
    client = ScriptedClient([])
    session = kp.session.EditSession(doc, layer, kp.logic.EditParams(" ", "a dog"))
    with pytest.raises(kp.logic.PluginError, match="source prompt is empty"):
        session.start(client)
    assert client.submitted == {}


# ----------------------------------------------------------------------------- real bridge
@pytest.mark.parametrize("depth", ["U8", "U16", "F32"])
def test_session_against_the_real_bridge_keeps_unselected_pixels(kp, bridge, monkeypatch, depth):
    server, config_home = bridge
    monkeypatch.setenv("CDS_CONFIG_DIR", str(config_home))
    monkeypatch.setenv("CDS_BRIDGE_PORT", str(server.port))
    doc, layer = document_with_layer(64, 48, depth)
    doc.sel = FakeSelection.rectangle(20, 14, 16, 12)
    before = dict(layer.pixels)
    params = kp.logic.EditParams("a cat", "a dog", steps=2, extra_settings=FAST_SETTINGS)
    with kp.session.make_client() as client:
        session = kp.session.EditSession(doc, layer, params)
        session.start(client)
        update = None
        while update is None or not update.finished:
            message = client.poll(30.0)
            assert message is not None, "no answer from the bridge within 30 s"
            update = session.handle(message) or update
    assert session.state == "done", update.text
    new = session.new_layer
    assert new.colorDepth() == depth
    box, n = (4, 0, 48, 42), layer.pixel_bytes
    got, src = new.pixelData(*box), layer.pixelData(*box)
    outside = [
        k for j in range(42) for i in range(48) if not (16 <= i < 32 and 14 <= j < 26)
        for k in range((j * 48 + i) * n, (j * 48 + i) * n + n)
    ]  # fmt: skip
    assert bytes(got[k] for k in outside) == bytes(src[k] for k in outside)
    assert got != src, "the edit changed nothing inside the selection"
    assert layer.pixels == before
