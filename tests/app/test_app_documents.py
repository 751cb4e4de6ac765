"""Documents: OpenRaster round trip, raster formats, flatten, atomic writes (no Qt)."""

from __future__ import annotations

import io
import os
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import pytest
from PIL import Image

from cds_desktop.app.documents import (
    Document,
    DocumentError,
    Layer,
    export_png,
    flatten,
    open_document,
    read_ora,
    write_ora,
)


def _doc() -> Document:
    rng = np.random.default_rng(7)
    layers = [
        Layer("background", rng.integers(0, 256, (24, 32, 4), dtype=np.uint8)),
        Layer(
            'odd <name> & "quotes" ü',
            rng.integers(0, 256, (10, 12, 4), dtype=np.uint8),
            x=-3,
            y=5,
            opacity=1 / 3,
            visible=False,
        ),
        Layer("top", rng.integers(0, 256, (6, 7, 4), dtype=np.uint8), x=30, y=20, opacity=0.25),
    ]
    layers[0].pixels[0, 0] = (17, 99, 200, 0)  # colour under zero alpha must survive too
    return Document(32, 24, layers, active_uid=layers[1].uid)


def test_ora_round_trip_is_bit_exact(tmp_path):
    doc = _doc()
    path = tmp_path / "doc.ora"
    write_ora(doc, path)
    back = read_ora(path)
    assert (back.width, back.height) == (doc.width, doc.height)
    assert len(back.layers) == len(doc.layers)
    for a, b in zip(doc.layers, back.layers):
        assert (a.name, a.x, a.y, a.opacity, a.visible) == (b.name, b.x, b.y, b.opacity, b.visible)
        assert a.pixels.tobytes() == b.pixels.tobytes()
    assert back.layer(back.active_uid).name == doc.layers[1].name
    assert back.path == path


def test_ora_layout(tmp_path):
    path = tmp_path / "doc.ora"
    doc = _doc()
    write_ora(doc, path)
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        assert infos[0].filename == "mimetype"
        assert infos[0].compress_type == zipfile.ZIP_STORED
        assert z.read("mimetype") == b"image/openraster"
        names = {i.filename for i in infos}
        assert {"stack.xml", "mergedimage.png", "Thumbnails/thumbnail.png"} <= names
        root = ET.fromstring(z.read("stack.xml"))
        assert [n.get("name") for n in root.iter("layer")] == [
            layer.name for layer in reversed(doc.layers)
        ]
        merged = np.array(Image.open(io.BytesIO(z.read("mergedimage.png"))))
        assert merged.tobytes() == flatten(doc).tobytes()
        thumb = Image.open(io.BytesIO(z.read("Thumbnails/thumbnail.png")))
        assert max(thumb.size) <= 256
    with open(path, "rb") as f:  # the mimetype is readable at a fixed offset
        assert f.read(54)[30:54] == b"mimetypeimage/openraster"


def test_ora_reads_nested_stacks_and_offsets(tmp_path):
    path = tmp_path / "nested.ora"
    png = io.BytesIO()
    Image.new("RGBA", (2, 2), (1, 2, 3, 4)).save(png, format="PNG")
    xml = (
        '<image w="10" h="10"><stack><stack x="3" y="4" name="group">'
        '<layer src="data/a.png" name="a" x="1" y="1" visibility="hidden"/></stack>'
        '<layer src="data/a.png" name="b"/></stack></image>'
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "image/openraster")
        z.writestr("stack.xml", xml)
        z.writestr("data/a.png", png.getvalue())
    doc = read_ora(path)
    assert [(layer.name, layer.x, layer.y, layer.visible) for layer in doc.layers] == [
        ("b", 0, 0, True),
        ("a", 4, 5, False),
    ]


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_open_raster_formats_give_one_layer(tmp_path, suffix):
    path = tmp_path / f"pic{suffix}"
    Image.new("RGB", (9, 7), (10, 200, 30)).save(path)
    doc = open_document(path)
    assert (doc.width, doc.height, len(doc.layers)) == (9, 7, 1)
    assert doc.layers[0].name == "pic"
    assert doc.path is None and doc.source_path == path  # Save never writes over a PNG
    assert doc.layers[0].pixels.shape == (7, 9, 4)


def test_open_errors_are_readable(tmp_path):
    with pytest.raises(DocumentError, match="unsupported file type"):
        open_document(tmp_path / "notes.txt")
    with pytest.raises(DocumentError, match="does not exist"):
        open_document(tmp_path / "missing.png")
    bad = tmp_path / "broken.ora"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DocumentError, match="not a valid OpenRaster"):
        open_document(bad)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG garbage")
    with pytest.raises(DocumentError, match="could not read"):
        open_document(junk)


def test_flatten_composites_opacity_offsets_and_visibility():
    red = np.zeros((2, 2, 4), np.uint8)
    red[...] = (255, 0, 0, 255)
    blue = np.zeros((1, 1, 4), np.uint8)
    blue[...] = (0, 0, 255, 255)
    doc = Document(2, 2, [Layer("red", red), Layer("blue", blue, x=1, y=1, opacity=0.5)])
    out = flatten(doc)
    assert tuple(out[0, 0]) == (255, 0, 0, 255)
    assert tuple(out[1, 1]) == (128, 0, 128, 255)
    doc.layers[1].visible = False
    assert tuple(flatten(doc)[1, 1]) == (255, 0, 0, 255)


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    folder = tmp_path / "out"
    folder.mkdir()
    path = folder / "keep.ora"
    write_ora(_doc(), path)
    original = path.read_bytes()

    def broken(f, entries):
        f.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("cds_desktop.app.documents.ora._write_zip", broken)
    with pytest.raises(DocumentError, match="No space left"):
        write_ora(_doc(), path)
    assert path.read_bytes() == original
    assert os.listdir(folder) == ["keep.ora"]


def test_export_png_writes_the_flattened_image(tmp_path):
    doc = _doc()
    out = tmp_path / "flat.png"
    export_png(doc, out)
    assert np.array(Image.open(out)).tobytes() == flatten(doc).tobytes()


# ----------------------------------------------------------------------------- cds extension
def _edited_doc() -> Document:
    """A source with a mask, a result made from it, and the History entry of that edit."""
    from cds_desktop.app.documents import EditRecord

    rng = np.random.default_rng(3)
    source = Layer("source", rng.integers(0, 256, (12, 16, 4), dtype=np.uint8), x=2)
    source.mask[3:7, 4:9] = 255
    source.mask[8, 1] = 17  # soft mask values survive too
    result = Layer("a blue circle (seed 4)", rng.integers(0, 256, (12, 16, 4), dtype=np.uint8))
    result.source_uid, result.history_id = source.uid, 1
    plain = Layer("plain", rng.integers(0, 256, (5, 5, 4), dtype=np.uint8))
    thumb = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    history = [
        EditRecord(
            1,
            "a red circle",
            "a blue circle",
            {"seed": 4, "w_cut": None},
            "m",
            2.5,
            result.uid,
            thumb,
        )
    ]
    return Document(20, 14, [source, result, plain], history=history)


def test_ora_keeps_masks_result_links_and_history(tmp_path):
    doc = _edited_doc()
    path = tmp_path / "edited.ora"
    write_ora(doc, path)
    back = read_ora(path)
    source, result, plain = back.layers
    assert source.mask.tobytes() == doc.layers[0].mask.tobytes()
    assert not result.has_mask and not plain.has_mask
    assert result.source_uid == source.uid and result.history_id == 1
    assert source.source_uid is None and plain.source_uid is None
    (record,) = back.history
    original = doc.history[0]
    assert (record.id, record.source_prompt, record.target_prompt, record.settings) == (
        1,
        "a red circle",
        "a blue circle",
        {"seed": 4, "w_cut": None},
    )
    assert record.layer_uid == result.uid and record.elapsed == 2.5
    assert record.thumbnail.tobytes() == original.thumbnail.tobytes()


def test_ora_extension_leaves_the_standard_stack_alone(tmp_path):
    """Programs that do not know the cds namespace see a plain OpenRaster file: standard
    attributes only outside the namespace, extra files outside data/, a declared namespace."""
    from cds_desktop.app.documents.ora import NS

    path = tmp_path / "edited.ora"
    write_ora(_edited_doc(), path)
    with zipfile.ZipFile(path) as z:
        xml = z.read("stack.xml")
        names = z.namelist()
    assert f'xmlns:cds="{NS}"'.encode() in xml
    standard = {"name", "src", "x", "y", "opacity", "visibility", "selected"}
    for node in ET.fromstring(xml).iter("layer"):
        assert {k for k in node.attrib if not k.startswith("{")} <= standard
        assert {k for k in node.attrib if k.startswith("{")} <= {
            f"{{{NS}}}{n}" for n in ("id", "mask", "source", "history")
        }
    assert [n for n in names if n.startswith("data/")] == [
        "data/layer0.png",
        "data/layer1.png",
        "data/layer2.png",
    ]
    assert all(
        n.startswith(("data/", "cds-desktop/")) or "/" not in n or n.startswith("Thumbnails/")
        for n in names
    )


def test_ora_with_a_damaged_history_still_opens(tmp_path):
    path = tmp_path / "edited.ora"
    write_ora(_edited_doc(), path)
    damaged = tmp_path / "damaged.ora"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(damaged, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "cds-desktop/history.json":
                data = b"[{not json"
            dst.writestr(info, data)
    back = read_ora(damaged)
    assert len(back.layers) == 3 and back.history == []
    assert back.layers[1].source_uid == back.layers[0].uid  # the links are in stack.xml


def test_new_layer_names_are_unique():
    doc = _edited_doc()
    assert doc.unique_name("plain") == "plain #2"
    doc.layers.append(Layer("plain #2", np.zeros((1, 1, 4), np.uint8)))
    assert doc.unique_name("plain") == "plain #3"
    assert doc.unique_name("new") == "new"
