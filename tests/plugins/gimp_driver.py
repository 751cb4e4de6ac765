"""Runs INSIDE GIMP 3 (``gimp-console-3.0 -i --batch-interpreter=python-fu-eval``), in the
Debian 13 chroot made by gimp_chroot.py; test_gimp_real.py copies it there and calls
``run(OUT_DIR, SCENARIOS)``.

Each scenario builds an image, calls the installed plug-in's PDB procedure
``plug-in-cds-edit`` non-interactively, exactly as another plug-in or a script would, and
records what GIMP then holds: the procedure's status and message, the layer stack, the new
layer's place, size and Babl format, and raw dumps (the layer's own format) of the source
before and after and of the new layer. Everything goes to OUT_DIR (report.json + *.raw);
the test checks it. GIMP's Python is not pytest's: standard library and GObject
introspection only.
"""

import json
import os
import struct
import time
import traceback

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
gi.require_version("Babl", "0.1")
from gi.repository import Babl, Gegl, Gimp  # noqa: E402

PROC = "plug-in-cds-edit"
NORMAL = Gimp.LayerMode.NORMAL
W, H = 64, 48
OFFSET = (4, 2)
SELECTION = (20, 14, 16, 12)
PROMPTS = {"source": "a colourful gradient", "target": "a red dog"}

PRECISIONS = {
    "u8": Gimp.Precision.U8_NON_LINEAR,
    "u16": Gimp.Precision.U16_NON_LINEAR,
    "u16-linear": Gimp.Precision.U16_LINEAR,
    "float": Gimp.Precision.FLOAT_LINEAR,
    "u32": Gimp.Precision.U32_LINEAR,
    "half": Gimp.Precision.HALF_PERCEPTUAL,
    "double": Gimp.Precision.DOUBLE_NON_LINEAR,
}
CODES = {"u8": "B", "u16": "H", "u32": "I", "half": "e", "float": "f", "double": "d"}


def native_name(drawable):
    return Babl.get_name(drawable.get_format())


def pattern(drawable):
    """Pixels no 8-bit image holds: odd 16-bit values, float values above 1 and below 0,
    alpha that is not opaque (when there is alpha)."""
    fmt = drawable.get_format()
    kind = Babl.get_name(Babl.format_get_type(fmt, 0))
    n = Babl.format_get_n_components(fmt)
    out = []
    for y in range(drawable.get_height()):
        for x in range(drawable.get_width()):
            if kind == "u8":
                px = [(4 * x) % 256, (5 * y) % 256, (200 - 2 * x - y) % 256, 255]
            elif kind in ("u16", "u32"):
                px = [1001 + 301 * x, 40001 - 257 * y, 12345 + 3 * x * y, 65001 - 2 * x]
                px = [v * 65537 + 1 for v in px] if kind == "u32" else px
            else:
                px = [4.0 + x / 7.0, -0.25 + y / 100.0, (x * y) / 997.0, 0.75]
            out.append(struct.pack(f"={n}{CODES[kind]}", *px[:n]))
    return b"".join(out)


def whole(drawable):
    return Gegl.Rectangle.new(0, 0, drawable.get_width(), drawable.get_height())


def dump(drawable):
    buffer = drawable.get_buffer()
    return bytes(buffer.get(whole(drawable), 1.0, None, Gegl.AbyssPolicy.NONE))


def make_image(precision="u8", alpha=True, select=True, profile=None, feather=0.0):
    image = Gimp.Image.new_with_precision(W, H, Gimp.ImageBaseType.RGB, PRECISIONS[precision])
    if profile == "adobe":
        image.set_color_profile(Gimp.ColorProfile.new_rgb_adobe())
    kind = Gimp.ImageType.RGBA_IMAGE if alpha else Gimp.ImageType.RGB_IMAGE
    source = Gimp.Layer.new(image, "Source", W, H, kind, 100.0, NORMAL)
    image.insert_layer(source, None, 0)
    buffer = source.get_buffer()
    buffer.set(whole(source), native_name(source), pattern(source))
    buffer.flush()
    source.set_offsets(*OFFSET)  # partly off the canvas
    top = Gimp.Layer.new(image, "Top", W, H, Gimp.ImageType.RGBA_IMAGE, 100.0, NORMAL)
    image.insert_layer(top, None, 0)
    if select:
        image.select_rectangle(Gimp.ChannelOps.REPLACE, *SELECTION)
        if feather:
            Gimp.Selection.feather(image, feather)
    return image, source


def call(image, drawables, **overrides):
    proc = Gimp.get_pdb().lookup_procedure(PROC)
    config = proc.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", drawables)
    values = dict(PROMPTS, mode="cds", steps=2)
    values.update(overrides)
    for name, value in values.items():
        config.set_property(name, value)
    result = proc.run(config)
    status = result.index(0)
    message = result.index(1) if result.length() > 1 else None
    return status.value_nick, (str(message) if message is not None else None)


def stack(image):
    return [
        {
            "name": layer.get_name(),
            "offsets": list(layer.get_offsets()[1:]),
            "size": [layer.get_width(), layer.get_height()],
            "format": native_name(layer),
        }
        for layer in image.get_layers()
    ]


def edit(out, name, report, **options):
    """One edit: status, stack, and dumps of the source (before, after) and new layer."""
    overrides = options.pop("overrides", {})
    image, source = make_image(**options)
    before = dump(source)
    status, message = call(image, [source], **overrides)
    entry = {"status": status, "message": message, "layers": stack(image)}
    entry["source_format"] = native_name(source)
    entry["source_unchanged"] = dump(source) == before
    write(out, name + "-source.raw", before)
    layers = image.get_layers()
    if status == "success" and len(layers) == 3:
        write(out, name + "-new.raw", dump(layers[1]))
    mask = image.get_selection().get_buffer()
    write(
        out,
        name + "-mask.raw",
        bytes(mask.get(Gegl.Rectangle.new(0, 0, W, H), 1.0, "Y u8", Gegl.AbyssPolicy.NONE)),
    )
    report[name] = entry
    image.delete()


def attempt(report, name, image, drawables, **overrides):
    """Call the procedure; record its status, message and how many layers it added."""
    layers_before = len(image.get_layers())
    status, message = call(image, drawables, **overrides)
    report[name] = {
        "status": status,
        "message": message,
        "layers_added": len(image.get_layers()) - layers_before,
    }
    image.delete()


def registration(report):
    proc = Gimp.get_pdb().lookup_procedure(PROC)
    report["registration"] = {
        "found": proc is not None,
        "menu_paths": list(proc.get_menu_paths()) if proc else [],
        "menu_label": proc.get_menu_label() if proc else None,
        "image_types": proc.get_image_types() if proc else None,
        "arguments": [spec.name for spec in proc.get_arguments()] if proc else [],
    }


def refusals(report):
    gray = Gimp.Image.new(W, H, Gimp.ImageBaseType.GRAY)
    layer = Gimp.Layer.new(gray, "G", W, H, Gimp.ImageType.GRAYA_IMAGE, 100.0, NORMAL)
    gray.insert_layer(layer, None, 0)
    attempt(report, "gray", gray, [layer])
    indexed = Gimp.Image.new(W, H, Gimp.ImageBaseType.INDEXED)
    layer = Gimp.Layer.new(indexed, "I", W, H, Gimp.ImageType.INDEXED_IMAGE, 100.0, NORMAL)
    indexed.insert_layer(layer, None, 0)
    attempt(report, "indexed", indexed, [layer])
    image, source = make_image()
    attempt(report, "two_layers", image, image.get_layers())
    image, source = make_image()
    attempt(report, "channel", image, [image.get_selection()])
    image, source = make_image()
    group = Gimp.GroupLayer.new(image, "Group")
    image.insert_layer(group, None, 0)
    attempt(report, "group", image, [group])
    image, source = make_image()
    attempt(report, "empty_prompt", image, [source], target="   ")
    image, source = make_image(select=False)
    image.select_rectangle(Gimp.ChannelOps.REPLACE, 0, 0, 3, 1)  # left of the layer at x=4
    attempt(report, "selection_outside", image, [source])


def cancelled(report):
    """A long edit whose plug-in process the test kills (what the cancel button of GIMP's
    progress bar does), then a short edit: the bridge must have dropped the long job."""
    image, source = make_image()
    started = time.monotonic()
    attempt(report, "cancelled", image, [source], steps=2000)
    report["cancelled"]["seconds"] = time.monotonic() - started
    image, source = make_image()
    started = time.monotonic()
    attempt(report, "after_cancel", image, [source], steps=2)
    report["after_cancel"]["seconds"] = time.monotonic() - started
    image, source = make_image()
    started = time.monotonic()
    attempt(report, "forty_steps", image, [source], steps=42)
    report["forty_steps"]["seconds"] = time.monotonic() - started


def tokens(report, token_file):
    """No token file, then a wrong token (the plug-in reads the file on every edit)."""
    with open(token_file) as f:
        token = f.read()
    os.rename(token_file, token_file + ".away")
    image, source = make_image()
    attempt(report, "no_token", image, [source])
    with open(token_file, "w") as f:
        f.write("0" * 64)
    image, source = make_image()
    attempt(report, "wrong_token", image, [source])
    with open(token_file, "w") as f:
        f.write(token)
    os.remove(token_file + ".away")


def dialog(out):
    """Build and fill the procedure's dialog as GIMP does for an interactive run (needs a
    display: xvfb-run), then record every label in it; GIMP itself prints a warning for
    each duplicate mnemonic while filling it."""
    gi.require_version("GimpUi", "3.0")
    gi.require_version("Gtk", "3.0")
    from gi.repository import GimpUi, Gtk

    GimpUi.init("cds-gimp-test")
    proc = Gimp.get_pdb().lookup_procedure(PROC)
    widget = GimpUi.ProcedureDialog.new(proc, proc.create_config(), "CDS Edit")
    widget.fill(["source", "target", "mode", "steps"])
    labels = []

    def walk(item):
        if isinstance(item, Gtk.Label) and item.get_use_underline():
            labels.append(item.get_label())
        if isinstance(item, Gtk.Container):
            for child in item.get_children():
                walk(child)

    walk(widget)
    widget.destroy()
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump({"labels": labels}, f)


def write(out, name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


def run(out, scenarios):
    report = {}
    try:
        for scenario in scenarios:
            if scenario == "registration":
                registration(report)
            elif scenario == "edits":
                edit(out, "u8", report)
                edit(out, "u8_no_selection", report, select=False)
                edit(out, "u16", report, precision="u16")
                edit(out, "u16_linear_no_alpha", report, precision="u16-linear", alpha=False)
                edit(out, "u16_adobe", report, precision="u16", profile="adobe")
                edit(out, "float", report, precision="float")
                edit(out, "float_feathered", report, precision="float", feather=8.0)
                edit(out, "u32", report, precision="u32")
                edit(out, "half", report, precision="half")
                edit(out, "double", report, precision="double")
            elif scenario == "refusals":
                refusals(report)
            elif scenario == "cancelled":
                cancelled(report)
            elif scenario == "tokens":
                tokens(report, os.environ["CDS_TOKEN_FILE"])
            else:  # one edit that is expected to fail (no bridge, bad port, ...)
                image, source = make_image()
                attempt(report, scenario, image, [source])
    except Exception:  # noqa: BLE001 - the test shows it
        report["error"] = traceback.format_exc()
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
