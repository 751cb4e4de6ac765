"""The canvas: layers, the active layer's mask overlay, live preview, compare split, tools.

View: ``zoom`` (widget px per image px) and ``pan`` (widget position of the image origin).
The view fits the window until the user zooms or pans. Layers are drawn from cached QImages
that wrap their (never mutated) pixel arrays; the mask overlay is an RGBA array updated in
place in the touched box while painting.

The brush size is in screen pixels: zoomed in, a dab covers fewer image pixels (as the
outline shows). While comparing, the split line can be dragged on the canvas. The live
preview is captioned as approximate: most frames are mapped from the latents by a fast
linear projection, not decoded by the VAE, so their colours differ from the result's.

One module of about 500 lines on purpose: painting, the view transform and the mouse and key
handling of one widget share the same state (zoom, pan, the drag in progress, the caches).
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QPointF, QRect, QRectF, Qt, pyqtSignal
from PyQt6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PyQt6.QtWidgets import QSizePolicy, QWidget

from .. import masking
from ..documents import Layer
from ..state import DocumentState
from .mask_tools import ToolSettings

OVERLAY_RGB = (40, 120, 255)  # blue: visible on red and on skin tones
MIN_ZOOM, MAX_ZOOM = 0.02, 64.0
PREVIEW_CAPTION = "live preview (approximate colours)"
SPLIT_GRAB = 8  # widget px either side of the compare line that grab it


def rgba_image(arr: np.ndarray) -> QImage:
    """A QImage sharing ``arr``'s memory (keep ``arr`` alive while the image is used)."""
    h, w = arr.shape[:2]
    fmt = QImage.Format.Format_RGBA8888 if arr.shape[2] == 4 else QImage.Format.Format_RGB888
    return QImage(arr.data, w, h, arr.strides[0], fmt)


PREVIEW_MAX_SIDE = 256


def preview_rgba(rgb: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The latent preview as RGBA; with a mask, upscaled (to at most 256 px) and masked."""
    h, w = rgb.shape[:2]
    if mask is None or mask.size == 0:
        out = np.empty((h, w, 4), np.uint8)
        out[..., :3], out[..., 3] = rgb, 255
        return out
    mh, mw = mask.shape
    scale = min(1.0, PREVIEW_MAX_SIDE / max(mh, mw))
    size = (max(1, round(mw * scale)), max(1, round(mh * scale)))
    from PIL import Image

    colour = Image.fromarray(np.ascontiguousarray(rgb)).resize(size, Image.Resampling.BILINEAR)
    alpha = Image.fromarray(mask).resize(size, Image.Resampling.BILINEAR)
    return np.dstack([np.asarray(colour), np.asarray(alpha)])


def _checker() -> QBrush:
    pix = QPixmap(16, 16)
    pix.fill(QColor(200, 200, 200))
    p = QPainter(pix)
    p.fillRect(0, 0, 8, 8, QColor(235, 235, 235))
    p.fillRect(8, 8, 8, 8, QColor(235, 235, 235))
    p.end()
    return QBrush(pix)


class Canvas(QWidget):
    zoomChanged = pyqtSignal(float)
    cursorMoved = pyqtSignal(int, int)  # image pixel under the cursor; (-1, -1) outside
    splitChanged = pyqtSignal(float)  # the compare line was dragged (0 = left, 1 = right)

    def __init__(self, state: DocumentState, tools: ToolSettings, parent=None) -> None:
        super().__init__(parent)
        self.state, self.tools = state, tools
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(200, 200)
        self.zoom, self.pan, self.auto_fit = 1.0, QPointF(0, 0), True
        self._images: dict[int, tuple[np.ndarray, QImage]] = {}
        self._overlay: tuple[int, np.ndarray, QImage] | None = None
        self._preview: tuple[QImage, QRectF, np.ndarray] | None = None
        self.compare_uid: int | None = None
        self.split = 0.5
        self._drag: dict | None = None  # current stroke / shape / pan
        self._hover: QPointF | None = None
        self._space = False
        self._checker = _checker()
        self._update_cursor()
        state.documentReplaced.connect(self._on_document)
        state.layersChanged.connect(self._on_layers)
        state.activeLayerChanged.connect(lambda _uid: self._rebuild_overlay())
        state.maskChanged.connect(self._on_mask)
        tools.overlayChanged.connect(self._rebuild_overlay)
        tools.changed.connect(self._on_tool)

    # ------------------------------------------------------------------ view
    def fit(self) -> None:
        doc = self.state.doc
        if doc is None:
            return
        margin = 16
        avail_w, avail_h = max(1, self.width() - 2 * margin), max(1, self.height() - 2 * margin)
        self._set_view(min(avail_w / doc.width, avail_h / doc.height), auto_fit=True)

    def actual_size(self) -> None:
        self._set_view(1.0, auto_fit=False)

    def _set_view(self, zoom: float, auto_fit: bool) -> None:
        doc = self.state.doc
        self.zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        if doc is not None:
            self.pan = QPointF(
                (self.width() - doc.width * self.zoom) / 2,
                (self.height() - doc.height * self.zoom) / 2,
            )
        self.auto_fit = auto_fit
        self.zoomChanged.emit(self.zoom)
        self.update()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        anchor = anchor or QPointF(self.width() / 2, self.height() / 2)
        before = self.to_image(anchor)
        self.zoom = min(MAX_ZOOM, max(MIN_ZOOM, self.zoom * factor))
        self.pan = anchor - before * self.zoom
        self.auto_fit = False
        self.zoomChanged.emit(self.zoom)
        self.update()

    def to_image(self, pos: QPointF) -> QPointF:
        return (pos - self.pan) / self.zoom

    def image_rect(self) -> QRectF:
        doc = self.state.doc
        if doc is None:
            return QRectF()
        return QRectF(self.pan.x(), self.pan.y(), doc.width * self.zoom, doc.height * self.zoom)

    # ------------------------------------------------------------------ live preview / compare
    def set_preview(self, rgb: np.ndarray, rect: QRectF, mask: np.ndarray | None = None) -> None:
        """Show ``rgb`` (h, w, 3) stretched over ``rect`` (image pixels) until cleared.

        ``mask`` (the edited layer's mask cropped to ``rect``) limits it to the edited area.
        """
        arr = preview_rgba(rgb, mask)
        self._preview = (rgba_image(arr), rect, arr)
        self.update()

    def clear_preview(self) -> None:
        if self._preview is not None:
            self._preview = None
            self.update()

    @property
    def has_preview(self) -> bool:
        return self._preview is not None

    def set_compare(self, uid: int | None) -> None:
        self.compare_uid = uid
        self.update()

    def set_split(self, fraction: float) -> None:
        self.split = min(1.0, max(0.0, fraction))
        self.update()

    @property
    def brush_size(self) -> float:
        """The brush diameter in image pixels: the tool size is in screen pixels."""
        return max(0.5, self.tools.size / self.zoom)

    def _split_x(self) -> float:
        r = self.image_rect()
        return r.left() + r.width() * self.split

    def _on_split_line(self, pos: QPointF) -> bool:
        r = self.image_rect()
        return (
            self.compare_uid is not None
            and abs(pos.x() - self._split_x()) <= SPLIT_GRAB
            and r.top() <= pos.y() <= r.bottom()
        )

    # ------------------------------------------------------------------ caches
    def _on_document(self) -> None:
        self._images.clear()
        self._preview = None
        self.compare_uid = None
        self._drag = None
        self._rebuild_overlay()
        self.fit()

    def _on_layers(self) -> None:
        doc = self.state.doc
        alive = {layer.uid for layer in doc.layers} if doc else set()
        for uid in list(self._images):
            if uid not in alive:
                del self._images[uid]
        if self.compare_uid is not None and self.compare_uid not in alive:
            self.compare_uid = None
        self.update()

    def _image(self, layer: Layer) -> QImage:
        cached = self._images.get(layer.uid)
        if cached is None or cached[0] is not layer.pixels:
            cached = (layer.pixels, rgba_image(layer.pixels))
            self._images[layer.uid] = cached
        return cached[1]

    def _rebuild_overlay(self) -> None:
        layer = self.state.active_layer
        if layer is None:
            self._overlay = None
        else:
            arr = np.empty(layer.mask.shape + (4,), np.uint8)
            arr[..., :3] = OVERLAY_RGB
            self._overlay = (layer.uid, arr, rgba_image(arr))
            self._refresh_overlay(None)
        self.update()

    def _refresh_overlay(self, box) -> None:
        uid, arr, _ = self._overlay
        layer = self.state.doc.layer(uid)
        x0, y0, x1, y1 = box or (0, 0, layer.width, layer.height)
        alpha = layer.mask[y0:y1, x0:x1].astype(np.float32) * self.tools.overlay_opacity
        arr[y0:y1, x0:x1, 3] = np.round(alpha).astype(np.uint8)

    def _on_mask(self, uid: int, box) -> None:
        if self._overlay is not None and self._overlay[0] == uid:
            self._refresh_overlay(box)
        layer = self.state.doc.layer(uid) if self.state.doc else None
        if box is None or layer is None:
            self.update()
        else:  # repaint only the touched part (strokes stay cheap on big images)
            x0, y0, x1, y1 = box
            self.update(self._widget_rect(QRectF(layer.x + x0, layer.y + y0, x1 - x0, y1 - y0)))

    def _widget_rect(self, image_rect: QRectF) -> QRect:
        """The widget pixels covering ``image_rect`` (image coordinates), with a margin."""
        r = QRectF(image_rect.topLeft() * self.zoom + self.pan, image_rect.size() * self.zoom)
        return r.toAlignedRect().adjusted(-2, -2, 2, 2)

    def _cursor_rect(self) -> QRect:
        if self._hover is None:
            return QRect()
        r = self.tools.size / 2 + 3
        return QRectF(self._hover.x() - r, self._hover.y() - r, 2 * r, 2 * r).toAlignedRect()

    def _on_tool(self) -> None:
        self._update_cursor()
        self.update()

    # ------------------------------------------------------------------ painting
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window().color().darker(135))
        doc = self.state.doc
        if doc is None:
            self._paint_empty(p)
            return
        p.fillRect(self.image_rect(), self._checker)
        p.save()
        p.translate(self.pan)
        p.scale(self.zoom, self.zoom)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.zoom < 2)
        self._paint_layers(p)
        self._paint_overlay(p)
        if self._preview is not None:
            image, rect, _ = self._preview
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            p.drawImage(rect, image)
        p.restore()
        self._paint_preview_caption(p)
        self._paint_compare_line(p)
        self._paint_tool(p)
        p.end()

    def _paint_empty(self, p: QPainter) -> None:
        p.setPen(self.palette().windowText().color())
        p.drawText(
            self.rect(),
            Qt.AlignmentFlag.AlignCenter,
            "Open an image (Ctrl+O) or drop a file here",
        )
        p.end()

    def _paint_layers(self, p: QPainter) -> None:
        doc = self.state.doc
        split_x = doc.width * self.split
        for layer in self._layers_to_paint():
            p.save()
            if layer.uid == self.compare_uid:  # "after": right of the split only
                p.setClipRect(QRectF(split_x, 0, doc.width - split_x, doc.height))
            p.setOpacity(layer.opacity)
            p.drawImage(QPointF(layer.x, layer.y), self._image(layer))
            p.restore()

    def _layers_to_paint(self) -> list[Layer]:
        """The visible layers, bottom first. Comparing a result: its source and what lies
        below it ("before"), then the result itself ("after"); other layers are left out."""
        layers = [layer for layer in self.state.doc.layers if layer.visible and layer.opacity > 0]
        result = self.state.doc.layer(self.compare_uid) if self.compare_uid else None
        if result is None:
            return layers
        source = self.state.doc.layer(result.source_uid) if result.source_uid else None
        order = self.state.doc.layers
        base = order.index(source) if source is not None else order.index(result) - 1
        below = [layer for layer in layers if order.index(layer) <= base]
        return below + [result]

    def _paint_overlay(self, p: QPainter) -> None:
        if self._overlay is None or not self.tools.show_mask:
            return
        layer = self.state.doc.layer(self._overlay[0])
        if layer is not None:
            p.drawImage(QPointF(layer.x, layer.y), self._overlay[2])

    def preview_caption_rect(self) -> QRectF:
        """Where the preview's caption is drawn (widget coordinates); empty without one."""
        if self._preview is None:
            return QRectF()
        rect = self._preview[1]
        top_left = rect.topLeft() * self.zoom + self.pan
        metrics = self.fontMetrics()
        w, h = metrics.horizontalAdvance(PREVIEW_CAPTION) + 10, metrics.height() + 4
        x = min(max(0.0, top_left.x()), max(0.0, self.width() - w))
        y = max(0.0, top_left.y() - h - 2) if top_left.y() - h - 2 >= 0 else top_left.y() + 2
        return QRectF(x, y, w, h)

    def _paint_preview_caption(self, p: QPainter) -> None:
        box = self.preview_caption_rect()
        if box.isEmpty():
            return
        p.fillRect(box, QColor(0, 0, 0, 200))
        p.setPen(QColor(255, 255, 255))
        p.drawText(box, Qt.AlignmentFlag.AlignCenter, PREVIEW_CAPTION)

    def _paint_compare_line(self, p: QPainter) -> None:
        if self.compare_uid is None:
            return
        r = self.image_rect()
        x = r.left() + r.width() * self.split
        p.setPen(QPen(QColor(255, 255, 255), 2))
        p.drawLine(QPointF(x, r.top()), QPointF(x, r.bottom()))
        metrics = p.fontMetrics()
        for text, right in (("before", False), ("after", True)):
            w, h = metrics.horizontalAdvance(text) + 10, metrics.height() + 4
            box = QRectF(x + 6 if right else x - 6 - w, r.top() + 6, w, h)
            p.fillRect(box, QColor(0, 0, 0, 160))
            p.setPen(QColor(255, 255, 255))
            p.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    def _paint_tool(self, p: QPainter) -> None:
        drag = self._drag
        if drag and drag["kind"] in ("rect", "ellipse"):
            rect = QRectF(drag["start"], drag["end"]).normalized()
            rect = QRectF(rect.topLeft() * self.zoom + self.pan, rect.size() * self.zoom)
            p.setPen(QPen(QColor(255, 255, 255), 1, Qt.PenStyle.DashLine))
            p.drawEllipse(rect) if drag["kind"] == "ellipse" else p.drawRect(rect)
        elif self._hover is not None and self._on_split_line(self._hover):
            return
        elif self._hover is not None and self.tools.tool in ("brush", "eraser"):
            r = self.tools.size / 2
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            for color, width in ((QColor(0, 0, 0), 3), (QColor(255, 255, 255), 1)):
                p.setPen(QPen(color, width))
                p.drawEllipse(self._hover, r, r)

    # ------------------------------------------------------------------ input
    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt API
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.25**steps, event.position())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        if self.auto_fit:
            self.fit()
        super().resizeEvent(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self._update_cursor()
        elif event.key() == Qt.Key.Key_BracketLeft:
            self.tools.update(size=max(1, int(self.tools.size / 1.25)))
        elif event.key() == Qt.Key.Key_BracketRight:
            self.tools.update(size=min(2000, int(self.tools.size * 1.25) + 1))
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self._update_cursor()
        else:
            super().keyReleaseEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        pos = event.position()
        button = event.button()
        panning = button == Qt.MouseButton.MiddleButton or (
            button == Qt.MouseButton.LeftButton and (self._space or self.tools.tool == "pan")
        )
        if panning:
            self._drag = {"kind": "pan", "last": pos}
        elif button == Qt.MouseButton.LeftButton and self._on_split_line(pos):
            self._drag = {"kind": "split"}
        elif button == Qt.MouseButton.LeftButton and self.state.active_layer is not None:
            self._begin(pos, event.modifiers())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        pos = event.position()
        self.update(self._cursor_rect())  # where the brush outline was
        self._hover = pos
        if self.compare_uid is not None:
            self._update_cursor()  # the split line can be grabbed
        img = self.to_image(pos)
        doc = self.state.doc
        inside = doc is not None and 0 <= img.x() < doc.width and 0 <= img.y() < doc.height
        self.cursorMoved.emit(*(int(img.x()), int(img.y())) if inside else (-1, -1))
        drag = self._drag
        if drag is None or drag["kind"] == "stroke":
            if drag is not None:
                self._stroke_to(img)  # repaints the touched box via maskChanged
            self.update(self._cursor_rect())
            return
        if drag["kind"] == "pan":
            self.pan += pos - drag["last"]
            drag["last"] = pos
            self.auto_fit = False
        elif drag["kind"] == "split":
            r = self.image_rect()
            self.set_split((pos.x() - r.left()) / max(1.0, r.width()))
            self.splitChanged.emit(self.split)
        else:
            drag["end"] = img
        self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        drag, self._drag = self._drag, None
        if drag is None or drag["kind"] in ("pan", "split"):
            self._update_cursor()
            return
        layer = self.state.doc.layer(drag["uid"]) if self.state.doc else None
        if layer is None:
            return
        if drag["kind"] in ("rect", "ellipse"):
            box = self._shape_box(layer, drag["start"], self.to_image(event.position()))
            drag["box"] = masking.fill_shape(
                layer.mask, box, drag["kind"] == "ellipse", drag["subtract"]
            )
            self.state.maskChanged.emit(layer.uid, drag["box"])
        self.state.commit_mask(layer.uid, drag["box"], drag["before"], drag["text"])
        self.update()

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt API
        self._hover = None
        self.cursorMoved.emit(-1, -1)
        self.update()

    # ------------------------------------------------------------------ tools
    def _begin(self, pos: QPointF, modifiers) -> None:
        layer = self.state.active_layer
        tool = self.tools.tool
        img = self.to_image(pos)
        texts = {
            "brush": "Brush stroke",
            "eraser": "Erase",
            "rect": "Rectangle",
            "ellipse": "Ellipse",
        }
        self._drag = {
            "kind": "stroke" if tool in ("brush", "eraser") else tool,
            "uid": layer.uid,
            "before": layer.mask.copy(),
            "box": None,
            "text": texts.get(tool, "Mask"),
            "start": img,
            "end": img,
            "subtract": bool(modifiers & Qt.KeyboardModifier.AltModifier),
        }
        if self._drag["kind"] == "stroke":
            local = (img.x() - layer.x, img.y() - layer.y)
            self._drag["last"] = local
            box = masking.dab(
                layer.mask, *local, self.brush_size, self.tools.hardness, self._erasing
            )
            self._touched(layer.uid, box)

    @property
    def _erasing(self) -> bool:
        return self.tools.tool == "eraser"

    def _stroke_to(self, img: QPointF) -> None:
        drag = self._drag
        layer = self.state.doc.layer(drag["uid"])
        if layer is None:
            return
        local = (img.x() - layer.x, img.y() - layer.y)
        box = masking.segment(
            layer.mask, drag["last"], local, self.brush_size, self.tools.hardness, self._erasing
        )
        drag["last"] = local
        self._touched(layer.uid, box)

    def _touched(self, uid: int, box) -> None:
        if box is not None:
            self._drag["box"] = masking.union(self._drag["box"], box)
            self.state.maskChanged.emit(uid, box)

    @staticmethod
    def _shape_box(layer: Layer, a: QPointF, b: QPointF) -> masking.Box:
        xs = sorted((round(a.x()) - layer.x, round(b.x()) - layer.x))
        ys = sorted((round(a.y()) - layer.y, round(b.y()) - layer.y))
        return (xs[0], ys[0], xs[1], ys[1])

    def _update_cursor(self) -> None:
        on_line = self._hover is not None and self._on_split_line(self._hover)
        if on_line or (self._drag or {}).get("kind") == "split":
            self.setCursor(Qt.CursorShape.SplitHCursor)
        elif self._space or self.tools.tool == "pan":
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        else:
            self.setCursor(Qt.CursorShape.CrossCursor)
