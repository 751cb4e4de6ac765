"""Mask tools: the shared tool settings and the toolbar that edits them."""

from __future__ import annotations

from typing import Any

from PyQt6.QtCore import QObject, pyqtSignal
from PyQt6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QLabel,
    QSpinBox,
    QToolBar,
    QToolButton,
    QWidget,
)

TOOLS = (
    ("brush", "Brush", "B", "Paint the mask (area to edit)"),
    ("eraser", "Eraser", "E", "Erase the mask"),
    ("rect", "Rect", "R", "Rectangle selection (Alt: subtract)"),
    ("ellipse", "Ellipse", "O", "Ellipse selection (Alt: subtract)"),
    ("pan", "Pan", "H", "Pan the view (or drag with the middle button / Space)"),
)


class ToolSettings(QObject):
    """Current tool, brush size and hardness, and how the mask overlay is shown."""

    changed = pyqtSignal()
    overlayChanged = pyqtSignal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.tool = "brush"
        self.size = 40
        self.hardness = 0.8
        self.overlay_opacity = 0.5
        self.show_mask = True
        self.feather_radius = 8

    def update(self, **values: Any) -> None:
        overlay = {"overlay_opacity", "show_mask"} & set(values)
        for key, value in values.items():
            setattr(self, key, value)
        self.changed.emit()
        if overlay:
            self.overlayChanged.emit()

    def to_dict(self) -> dict[str, Any]:
        keys = ("tool", "size", "hardness", "overlay_opacity", "show_mask", "feather_radius")
        return {k: getattr(self, k) for k in keys}

    def load(self, values: dict[str, Any]) -> None:
        clean = {}
        for key, default in self.to_dict().items():
            value = values.get(key, default)
            if isinstance(value, type(default)) or (
                isinstance(default, float) and isinstance(value, int)
            ):
                clean[key] = type(default)(value)
        if clean.get("tool") not in {t[0] for t in TOOLS}:
            clean["tool"] = "brush"
        self.update(**clean)


class MaskToolbar(QToolBar):
    """Tool buttons, brush size/hardness, overlay and mask operations (overflows into a
    menu on narrow windows)."""

    maskOperation = pyqtSignal(str, float)  # invert | clear | from_alpha | feather, radius

    def __init__(self, tools: ToolSettings, parent: QWidget | None = None) -> None:
        super().__init__("Mask tools", parent)
        self.setObjectName("toolbar-mask")
        self.tools = tools
        self.buttons: dict[str, QToolButton] = {}
        self.operations: dict[str, QToolButton] = {}  # mask operations, by name
        self._group = QButtonGroup(self)
        for name, text, key, tip in TOOLS:
            button = QToolButton(self)
            button.setText(text)
            button.setCheckable(True)
            button.setToolTip(f"{tip} [{key}]")
            button.setShortcut(key)
            button.clicked.connect(lambda _=False, n=name: tools.update(tool=n))
            self._group.addButton(button)
            self.buttons[name] = button
            self.addWidget(button)
        self.addSeparator()
        self.size = self._spin("Size", 1, 2000, " px", lambda v: tools.update(size=v))
        self.size.setToolTip(
            "Brush diameter in screen pixels: it keeps its size on screen when you zoom "
            "([ and ] on the canvas)"
        )
        self.hardness = self._spin(
            "Hardness", 0, 100, " %", lambda v: tools.update(hardness=v / 100)
        )
        self.addSeparator()
        self.show_mask = QCheckBox("Mask", self)
        self.show_mask.setToolTip("Show the active layer's mask as an overlay")
        self.show_mask.toggled.connect(lambda on: tools.update(show_mask=on))
        self.addWidget(self.show_mask)
        self.overlay = self._spin("", 0, 100, " %", lambda v: tools.update(overlay_opacity=v / 100))
        self.overlay.setToolTip("Mask overlay opacity")
        self.addSeparator()
        for op, text, tip in (
            ("from_alpha", "From alpha", "Mask = the active layer's opaque pixels"),
            ("invert", "Invert", "Invert the mask"),
            ("clear", "Clear", "Clear the mask (edit the whole layer)"),
            ("feather", "Feather", "Blur the mask edge by the radius"),
        ):
            button = QToolButton(self)
            button.setText(text)
            button.setToolTip(tip)
            button.clicked.connect(lambda _=False, o=op: self._operation(o))
            self.addWidget(button)
            self.operations[op] = button
        self.feather = self._spin("", 1, 200, " px", lambda v: tools.update(feather_radius=v))
        self.feather.setToolTip("Feather radius")
        tools.changed.connect(self.sync)
        self.sync()

    def _spin(self, text: str, lo: int, hi: int, suffix: str, slot) -> QSpinBox:
        if text:
            self.addWidget(QLabel(f" {text} ", self))
        spin = QSpinBox(self)
        spin.setRange(lo, hi)
        spin.setSuffix(suffix)
        spin.valueChanged.connect(slot)
        self.addWidget(spin)
        return spin

    def _operation(self, op: str) -> None:
        self.maskOperation.emit(op, float(self.tools.feather_radius))

    def sync(self) -> None:
        """Show the current ToolSettings (without feeding changes back)."""
        t = self.tools
        widgets = (self.size, self.hardness, self.overlay, self.feather, self.show_mask)
        for w in widgets:
            w.blockSignals(True)
        self.buttons[t.tool].setChecked(True)
        self.size.setValue(int(t.size))
        self.hardness.setValue(round(t.hardness * 100))
        self.overlay.setValue(round(t.overlay_opacity * 100))
        self.feather.setValue(int(t.feather_radius))
        self.show_mask.setChecked(t.show_mask)
        for w in widgets:
            w.blockSignals(False)
