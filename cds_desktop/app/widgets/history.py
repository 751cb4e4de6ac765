"""History: every finished edit with its settings; clicking one restores them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PyQt6.QtCore import QSize, Qt, pyqtSignal
from PyQt6.QtGui import QIcon, QImage, QPixmap
from PyQt6.QtWidgets import QListWidget, QListWidgetItem, QVBoxLayout, QWidget

ID_ROLE = Qt.ItemDataRole.UserRole
THUMB = 48


@dataclass
class HistoryEntry:
    id: int
    source_prompt: str
    target_prompt: str
    settings: dict[str, Any]  # the request's settings (None = model default kept)
    model: str
    elapsed: float
    layer_uid: int | None = None
    thumbnail: np.ndarray | None = field(default=None, repr=False)  # (h, w, 3) uint8

    @property
    def summary(self) -> str:
        s = self.settings
        w_cut = "model default" if s.get("w_cut") is None else s.get("w_cut")
        size = s.get("working_size") or "model default"
        return (
            f"{self.target_prompt} (seed {s.get('seed')})\n"
            f"{s.get('mode', 'cds').upper()}, {s.get('steps')} steps, w_cut {w_cut}, "
            f"guidance {s.get('guidance_scale')}, size {size}, {self.elapsed:.1f} s"
        )


class HistoryPanel(QWidget):
    restoreRequested = pyqtSignal(object)  # HistoryEntry

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entries: dict[int, HistoryEntry] = {}
        self.list = QListWidget(self)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setWordWrap(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setToolTip("Click an edit to restore its settings and select its layer")
        self.list.itemClicked.connect(self._on_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list)

    def add(self, entry: HistoryEntry) -> None:
        self.entries[entry.id] = entry
        item = QListWidgetItem(entry.summary)
        item.setData(ID_ROLE, entry.id)
        item.setToolTip(f"source: {entry.source_prompt}\nmodel: {entry.model}")
        if entry.thumbnail is not None:
            item.setIcon(QIcon(_pixmap(entry.thumbnail)))
        self.list.insertItem(0, item)

    def clear(self) -> None:
        self.entries.clear()
        self.list.clear()

    def _on_clicked(self, item: QListWidgetItem) -> None:
        entry = self.entries.get(item.data(ID_ROLE))
        if entry is not None:
            self.restoreRequested.emit(entry)


def _pixmap(rgb: np.ndarray) -> QPixmap:
    arr = np.ascontiguousarray(rgb[..., :3])
    h, w = arr.shape[:2]
    image = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(image).scaled(
        THUMB,
        THUMB,
        Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.SmoothTransformation,
    )
