#!/usr/bin/env python3
"""CDS Edit for GIMP 3: edit the active layer with Contrastive Denoising Score.

Filters > AI > CDS Edit... sends the selected layer's pixels (inside the selection's
bounding box plus a margin, or the whole layer on the canvas when nothing is selected) to a
running ``cds-desktop --serve`` bridge, with the selection as the mask, and inserts the
result as a new layer directly above the source, named after the target prompt, at the same
place, inside one undo group. The source layer is only read. The new layer has the image's
precision: where the selection is 0 it is a bit-identical copy of the source, where it is
fully selected it holds the edit (8-bit sRGB from the model, converted), in between the two
are blended by the selection; outside the box it does not exist (the layer is the size of
the box). The progress shows in GIMP's status bar; its cancel button ends the plug-in and
with it the job, and a bridge that stops answering ends the wait with a message.

Install: copy the ``cds_gimp`` folder (with its ``cds_bridge`` sub-folder, added by
tools/build_plugins.py) to ``~/.config/GIMP/3.0/plug-ins/`` and make ``cds_gimp.py``
executable. GIMP 3.0 API only (Gimp.PlugIn, Gimp.ImageProcedure, GimpUi.ProcedureDialog).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gegl", "0.4")
gi.require_version("Babl", "0.1")
from gi.repository import Babl, Gegl, Gimp, GimpUi, GLib, GObject  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cds_bridge import client as bridge_client  # noqa: E402
from cds_bridge import pixelformat as pf  # noqa: E402
from cds_bridge import plugin_common as common  # noqa: E402
from cds_bridge import pngcodec  # noqa: E402
from cds_bridge import protocol as proto  # noqa: E402
from cds_bridge.plugin_common import EditParams, PluginError, Rect  # noqa: E402

log = logging.getLogger("cds_gimp")

PROC_NAME = "plug-in-cds-edit"
BINARY = "cds_gimp"
MENU_PATH = "<Image>/Filters/AI"
RGBA_FORMAT = "R'G'B'A u8"
MASK_FORMAT = "Y u8"
#: Babl component types -> pixelformat kinds (GIMP 3's precisions).
BABL_KINDS = {
    "u8": pf.U8,
    "u16": pf.U16,
    "u32": pf.U32,
    "half": pf.F16,
    "float": pf.F32,
    "double": pf.F64,
}
CLIENT_NAME = "cds-gimp"


# ----------------------------------------------------------------------------- GIMP reads
def gegl_rect(box: Rect, dx: int = 0, dy: int = 0) -> Any:
    """``box`` as a Gegl.Rectangle, shifted by (dx, dy) (image -> drawable coordinates)."""
    return Gegl.Rectangle.new(box.left + dx, box.top + dy, box.width, box.height)


def _ints(values: Any) -> list[int]:
    """The integers of a GI out-tuple, dropping its leading success/non-empty booleans."""
    items = list(values) if isinstance(values, (tuple, list)) else [values]
    return [int(v) for v in items if not isinstance(v, bool)]


def drawable_offsets(drawable: Any) -> tuple[int, int]:
    """GIMP 3.0: ``get_offsets()`` -> (success, x, y)."""
    x, y = _ints(drawable.get_offsets())[-2:]
    return x, y


def selection_box(image: Any) -> Rect | None:
    """GIMP 3.0: ``Gimp.Selection.bounds(image)`` -> (success, non_empty, x1, y1, x2, y2)."""
    values = list(Gimp.Selection.bounds(image))
    flags = [v for v in values if isinstance(v, bool)]
    x1, y1, x2, y2 = _ints(values)[-4:]
    if (flags and not flags[-1]) or x2 <= x1 or y2 <= y1:
        return None
    return Rect(x1, y1, x2 - x1, y2 - y1)


def check_target(image: Any, drawables: Any) -> Any:
    """The one layer to edit, or PluginError saying why not."""
    drawables = list(drawables or [])
    if len(drawables) != 1:
        raise PluginError(f"{len(drawables)} layers are selected: select exactly one layer")
    drawable = drawables[0]
    if not isinstance(drawable, Gimp.Layer):
        raise PluginError("the selected item is not a layer (a channel or mask): pick a layer")
    if drawable.is_group():
        raise PluginError(f"'{drawable.get_name()}' is a layer group: pick a normal layer")
    if image.get_base_type() != Gimp.ImageBaseType.RGB:
        raise PluginError("CDS needs an RGB image: use Image > Mode > RGB first")
    return drawable


def plan_box(image: Any, drawable: Any) -> tuple[Rect, bool]:
    """The box (image coordinates) to send and whether a selection limits the edit."""
    x, y = drawable_offsets(drawable)
    canvas = Rect(0, 0, image.get_width(), image.get_height())
    content = Rect(x, y, drawable.get_width(), drawable.get_height()).intersect(canvas)
    if content.empty:
        raise PluginError(f"the layer '{drawable.get_name()}' is outside the canvas")
    selected = selection_box(image)
    if selected is None:
        return content, False
    if selected.intersect(content).empty:
        raise PluginError(
            "the selection does not overlap the layer: select part of it "
            "(or Select > None to edit the whole layer)"
        )
    return selected.grow(common.context_margin(selected)).intersect(content), True


def read_rgba(drawable: Any, box: Rect) -> bytes:
    x, y = drawable_offsets(drawable)
    buffer = drawable.get_buffer()
    data = bytes(buffer.get(gegl_rect(box, -x, -y), 1.0, RGBA_FORMAT, Gegl.AbyssPolicy.CLAMP))
    if len(data) != box.width * box.height * 4:
        raise PluginError(f"GIMP returned {len(data)} bytes for a {box.width}x{box.height} area")
    return data


def read_mask(image: Any, box: Rect) -> bytes:
    """The selection inside ``box``: one byte (0..255) per pixel."""
    buffer = image.get_selection().get_buffer()
    mask = bytes(buffer.get(gegl_rect(box), 1.0, MASK_FORMAT, Gegl.AbyssPolicy.NONE))
    if not any(mask):
        raise PluginError("the selection is empty inside the layer: select what to edit")
    return mask


# ----------------------------------------------------------------------------- GIMP writes
def native_format(drawable: Any) -> str:
    """The Babl name of the drawable's own pixel format, colour space included (e.g.
    ``R'G'B'A u16`` or ``RGBA float-space-...``): Gegl reads and writes it unconverted."""
    return str(Babl.get_name(drawable.get_format()))


def pixel_format(drawable: Any) -> pf.PixelFormat:
    """The drawable's own format as pixelformat sees it: the Babl model says the curve
    (``R'G'B'`` and ``R~G~B~`` are perceptual, read as sRGB-encoded; ``RGB`` is linear)."""
    fmt = drawable.get_format()
    name = str(Babl.get_name(fmt))
    kind = BABL_KINDS.get(str(Babl.get_name(Babl.format_get_type(fmt, 0))))
    alpha = bool(Babl.format_has_alpha(fmt))
    if kind is None or int(Babl.format_get_n_components(fmt)) != 3 + alpha:
        raise PluginError(f"unsupported pixel format {name!r}")
    model = name.split(" ")[0]
    transfer = pf.SRGB if ("'" in model or "~" in model) else pf.LINEAR
    return pf.PixelFormat(kind, transfer, "RGBA" if alpha else "RGB")


def insert_result(image: Any, source: Any, request: Request, rgba: bytes, name: str) -> Any:
    """A new layer right above ``source`` at the request's box, in one undo group.

    It has the image's precision: the source's own pixels where the selection is 0, the
    8-bit result where it is 255, and in between the result plus the unselected share of
    the source's extra precision (:func:`pixelformat.blend`, the rule Krita uses too)."""
    box = request.box
    if len(rgba) != box.width * box.height * 4:
        raise PluginError(f"the result has {len(rgba)} bytes, expected {box.width}x{box.height}")
    layer_type = Gimp.ImageType.RGBA_IMAGE if source.has_alpha() else Gimp.ImageType.RGB_IMAGE
    image.undo_group_start()
    try:
        layer = Gimp.Layer.new(
            image, name, box.width, box.height, layer_type, 100.0, Gimp.LayerMode.NORMAL
        )
        position = image.get_item_position(source)
        if not image.insert_layer(layer, source.get_parent(), position):
            raise PluginError(f"GIMP refused to add the layer '{name}'")
        layer.set_offsets(box.left, box.top)
        write_pixels(layer, source, request, rgba)
        layer.update(0, 0, box.width, box.height)
    finally:
        image.undo_group_end()
    return layer


def write_pixels(layer: Any, source: Any, request: Request, rgba: bytes) -> None:
    """Fill the new layer (the size of the box) at the image's precision."""
    box, native = request.box, native_format(layer)
    local = gegl_rect(Rect(0, 0, box.width, box.height))
    buffer = layer.get_buffer()
    x, y = drawable_offsets(source)
    none = Gegl.AbyssPolicy.NONE
    original = bytes(source.get_buffer().get(gegl_rect(box, -x, -y), 1.0, native, none))

    def to_native(pixels: bytes) -> bytes:  # 8-bit sRGB -> the layer's format, via the layer
        buffer.set(local, RGBA_FORMAT, pixels)
        return bytes(buffer.get(local, 1.0, native, none))

    result = to_native(rgba)
    partial = request.mask is not None and bool(request.mask.translate(None, b"\x00\xff"))
    sent = to_native(request.rgba) if partial else result
    try:
        pixels = pf.blend(original, result, sent, request.mask, pixel_format(layer))
    except pf.PixelFormatError as exc:
        raise PluginError(str(exc)) from None
    buffer.set(local, native, pixels)
    buffer.flush()


# ----------------------------------------------------------------------------- the edit
class Progress:
    """GIMP's progress bar (the image window's status bar). GIMP's cancel button there ends
    this plug-in's process; the bridge then cancels the job (it cancels the jobs of every
    connection that closes) and nothing is added to the image."""

    def start(self, text: str) -> None:
        Gimp.progress_init(text)

    def update(self, text: str, fraction: float | None) -> None:
        Gimp.progress_set_text(text)
        if fraction is not None:
            Gimp.progress_update(fraction)
        else:
            Gimp.progress_pulse()

    def end(self) -> None:
        Gimp.progress_end()


def wait_for_result(client: Any, job: str, progress: Progress) -> bytes:
    """Block until the job's result (GIMP itself stays responsive: plug-ins run in their own
    process). After QUIET_BEFORE_PING seconds without news the bridge is pinged: a bridge
    that does not answer within NETWORK_TIMEOUT ends the wait with a PluginError."""
    while True:
        msg = client.poll(common.QUIET_BEFORE_PING)
        if msg is None:
            check_alive(client)
            continue
        if msg.job != job:
            continue
        if msg.type == proto.RESULT:
            return msg.parts.get("image", b"")
        if msg.type == proto.ERROR:
            raise bridge_client.BridgeError(str(msg.get("code")), _error_text(msg))
        if msg.type == proto.QUEUED:
            progress.update(f"CDS: queued (position {msg.get('position', '?')})", None)
        elif msg.type == proto.PROGRESS and msg.get("total"):
            step, total = int(msg.get("step") or 0), int(msg["total"])
            progress.update(f"CDS: step {step}/{total}", min(1.0, step / total))
        elif msg.type == proto.PROGRESS:
            progress.update(f"CDS: {msg.get('message') or 'loading the model'}", None)


def check_alive(client: Any) -> None:
    """Ping the bridge on the job's connection; PluginError if it does not answer."""
    welcome = client.welcome
    try:
        client.ping()
    except bridge_client.BridgeError as exc:
        if exc.code != proto.TIMEOUT:
            raise
        raise PluginError(
            f"the bridge stopped answering (no reply to a ping within {client.timeout:g} s): "
            "the edit was abandoned; restart `cds-desktop --serve`"
        ) from None
    if client.welcome is not welcome:  # ping() reconnected: the job's connection is gone
        raise PluginError("the bridge closed the connection during the edit: try again")


def _error_text(msg: Any) -> str:
    if msg.get("code") == proto.CANCELLED:
        return "the edit was cancelled"
    return f"{msg.get('code', 'ERROR')}: {msg.get('message', '')}"


@dataclass(frozen=True)
class Request:
    """What is sent: the box (image coordinates), its 8-bit RGBA pixels, the mask (one byte
    per pixel, None without a selection) and their PNGs."""

    box: Rect
    rgba: bytes
    mask: bytes | None
    image_png: bytes
    mask_png: bytes | None
    layer_name: str


def prepare(image: Any, drawable: Any, params: EditParams) -> Request:
    """Check and read everything locally, before any connection is made."""
    common.check_params(params)
    box, selected = plan_box(image, drawable)
    rgba = read_rgba(drawable, box)
    mask = read_mask(image, box) if selected else None
    image_png = pngcodec.encode_png(box.width, box.height, rgba, channels=4)
    mask_png = pngcodec.encode_png(box.width, box.height, mask, channels=1) if mask else None
    return Request(box, rgba, mask, image_png, mask_png, drawable.get_name())


def send(client: Any, request: Request, params: EditParams, progress: Progress) -> bytes:
    """Submit and wait; returns the result's RGBA pixels (the size of the box)."""
    box = request.box
    progress.start(f"CDS: sending {box.width}x{box.height} pixels")
    try:
        job = client.submit_edit(
            request.image_png,
            params.source,
            params.target,
            mask_png=request.mask_png,
            settings=params.settings(),
            meta={"layer": request.layer_name, "box": list(box)},
            offset=(box.left, box.top),
        )
        result = pngcodec.decode_png(wait_for_result(client, job, progress))
    finally:
        progress.end()
    if (result.width, result.height) != (box.width, box.height):
        raise PluginError(
            f"the result is {result.width}x{result.height}, expected {box.width}x{box.height}"
        )
    return result.rgba


def edit_layer(
    image: Any, drawable: Any, params: EditParams, client: Any, progress: Progress
) -> Any:
    """Read, send, wait, insert. Returns the new layer. Raises user-readable errors."""
    request = prepare(image, drawable, params)
    rgba = send(client, request, params, progress)
    return insert_result(image, drawable, request, rgba, common.layer_name(params.target))


def make_client(address: str = "", fingerprint: str = "") -> Any:
    """A client for the bridge at ``address`` (HOST[:PORT]; empty: $CDS_BRIDGE_HOST/_PORT or
    this computer), TLS with ``fingerprint`` pinned for a remote one."""
    return common.make_client(CLIENT_NAME, address=address, fingerprint=fingerprint)


# ----------------------------------------------------------------------------- procedure
def params_from(config: Any) -> EditParams:
    return EditParams(
        source=str(config.get_property("source") or ""),
        target=str(config.get_property("target") or ""),
        mode=str(config.get_property("mode") or "cds"),
        steps=int(config.get_property("steps")),
    )


def show_dialog(procedure: Any, config: Any) -> bool:
    GimpUi.init(BINARY)
    dialog = GimpUi.ProcedureDialog.new(procedure, config, "CDS Edit")
    dialog.fill(["source", "target", "mode", "steps", "bridge", "fingerprint"])
    accepted = bool(dialog.run())
    dialog.destroy()
    return accepted


def run(procedure, run_mode, image, drawables, config, data):
    """The procedure's run function (GIMP 3.0 ImageProcedure signature)."""
    if run_mode == Gimp.RunMode.INTERACTIVE and not show_dialog(procedure, config):
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    try:
        drawable = check_target(image, drawables)
        params = params_from(config)
        request = prepare(image, drawable, params)
        bridge = str(config.get_property("bridge") or "")
        fingerprint = str(config.get_property("fingerprint") or "")
        with make_client(bridge, fingerprint) as client:
            rgba = send(client, request, params, Progress())
        insert_result(image, drawable, request, rgba, common.layer_name(params.target))
    except (PluginError, bridge_client.BridgeError, pngcodec.PngError) as exc:
        return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(str(exc)))
    Gimp.displays_flush()
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


def _mode_choice() -> Any:
    choice = Gimp.Choice.new()
    choice.add("cds", 0, "CDS (keeps structure)", "")
    choice.add("dds", 1, "DDS (baseline)", "")
    return choice


def add_arguments(procedure: Any) -> None:
    rw = GObject.ParamFlags.READWRITE
    procedure.add_string_argument("source", "Source _prompt", "What the layer shows now", "", rw)
    procedure.add_string_argument("target", "_Target prompt", "What it should show", "", rw)
    procedure.add_choice_argument("mode", "_Mode", "CDS or plain DDS", _mode_choice(), "cds", rw)
    procedure.add_int_argument(
        "steps",
        "St_eps",
        "Optimisation steps",
        common.MIN_STEPS,
        common.MAX_STEPS,
        common.DEFAULT_STEPS,
        rw,
    )
    # where the bridge is (empty: this computer, or $CDS_BRIDGE_HOST/_PORT/_FINGERPRINT)
    procedure.add_string_argument(
        "bridge", "_Bridge address", "HOST[:PORT] of a remote bridge; empty: this computer", "", rw
    )
    procedure.add_string_argument(
        "fingerprint", "Certificate _fingerprint", "SHA-256 the remote bridge printed", "", rw
    )


class CdsGimp(Gimp.PlugIn):
    def do_query_procedures(self):
        return [PROC_NAME]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        procedure.set_image_types("RGB*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label("CDS _Edit...")
        procedure.add_menu_path(MENU_PATH)
        procedure.set_documentation(
            "Edit the layer with Contrastive Denoising Score",
            "Sends the layer (inside the selection, if any) to a running cds-desktop "
            "bridge and adds the edited pixels as a new layer above it.",
            name,
        )
        procedure.set_attribution("cds-desktop", "cds-desktop", "2024")
        add_arguments(procedure)
        return procedure


if __name__ == "__main__":
    Gimp.main(CdsGimp.__gtype__, sys.argv)
