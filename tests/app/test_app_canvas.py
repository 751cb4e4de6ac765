"""Canvas interactions a user sees: the brush keeps its screen size when zooming, the compare
line is dragged on the canvas, and the live preview says its colours are approximate."""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtTest import QTest
from test_app_window import widget_pos

from cds_desktop.app.documents import Layer
from cds_desktop.app.widgets.canvas import PREVIEW_CAPTION


def dab_width(window, size: int) -> int:
    """Clear the mask, click once in the middle with a hard brush; the painted width."""
    layer = window.state.active_layer
    window.state.mask_operation("clear")
    window.tools.update(tool="brush", size=size, hardness=1.0)
    canvas = window.canvas
    pos = widget_pos(canvas, layer.width / 2, layer.height / 2)
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, pos=pos)
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=pos)
    columns = np.nonzero(layer.mask.max(axis=0) >= 128)[0]
    return int(columns[-1] - columns[0] + 1) if columns.size else 0


def test_brush_size_is_on_screen_and_follows_the_zoom(window, circle_png):
    window.open_path(circle_png)  # 48x40 fitted into the window: about 14x
    zoom = window.canvas.zoom
    assert zoom > 8
    fitted = dab_width(window, 40)
    assert abs(fitted - 40 / zoom) <= 2  # 40 screen px = about 3 image px
    window.canvas.actual_size()
    assert dab_width(window, 40) >= 38  # at 100 % the same brush covers 40 image px
    assert "screen pixels" in window.mask_bar.size.toolTip()


def _with_result(window, circle_png) -> Layer:
    window.open_path(circle_png)
    source = window.state.active_layer
    result = Layer("result", np.full_like(source.pixels, 90), source_uid=source.uid)
    window.state.add_layer(result, 1)
    return result


def test_compare_line_is_dragged_on_the_canvas(qtbot, window, circle_png):
    result = _with_result(window, circle_png)
    window.compare_action.trigger()
    assert window.canvas.compare_uid == result.uid
    canvas = window.canvas
    doc = window.state.doc
    start = widget_pos(canvas, doc.width * 0.5, doc.height / 2)
    end = widget_pos(canvas, doc.width * 0.25, doc.height / 2)
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, pos=start)
    QTest.mouseMove(canvas, end)
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=end)
    assert abs(canvas.split - 0.25) < 0.03
    assert window.split.value() == round(canvas.split * 100)  # the slider follows
    assert not result.mask.any()  # grabbing the line painted nothing
    # away from the line the brush still paints
    QTest.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=widget_pos(canvas, 40, 20))
    assert result.mask.any()


def test_live_preview_is_labelled_approximate(window, circle_png):
    window.open_path(circle_png)
    canvas = window.canvas
    canvas.set_preview(np.full((8, 8, 3), (0, 200, 0), np.uint8), QRectF(8, 8, 32, 24))
    box = canvas.preview_caption_rect()
    assert not box.isEmpty() and "approximate" in PREVIEW_CAPTION
    image = canvas.grab().toImage()
    inside = [
        image.pixelColor(round(box.left() + box.width() * f), round(box.center().y()))
        for f in np.linspace(0.05, 0.95, 40)
    ]
    assert any(c.lightness() > 200 for c in inside)  # the caption's text
    assert any(c.lightness() < 90 for c in inside)  # on its dark plate
    canvas.clear_preview()
    assert canvas.preview_caption_rect().isEmpty()
