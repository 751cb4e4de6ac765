"""Layers panel: the stack top first; select, show/hide, rename, reorder, opacity, delete."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..state import DocumentState

UID_ROLE = Qt.ItemDataRole.UserRole


class LayersPanel(QWidget):
    def __init__(self, state: DocumentState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._syncing = False
        self.list = QListWidget(self)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.list.setToolTip("Check to show; double-click to rename")
        self.list.currentItemChanged.connect(self._on_current)
        self.list.itemChanged.connect(self._on_item_changed)
        self.up = self._button("Up", "Move the layer up", lambda: self._move(+1))
        self.down = self._button("Down", "Move the layer down", lambda: self._move(-1))
        self.delete = self._button("Delete", "Delete the layer", self._delete)
        self.opacity = QSpinBox(self)
        self.opacity.setRange(0, 100)
        self.opacity.setSuffix(" %")
        self.opacity.setToolTip("Layer opacity")
        self.opacity.valueChanged.connect(self._on_opacity)
        buttons = QHBoxLayout()
        for w in (self.up, self.down, self.delete):
            buttons.addWidget(w)
        buttons.addStretch(1)
        buttons.addWidget(QLabel("Opacity", self))
        buttons.addWidget(self.opacity)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        state.layersChanged.connect(self.sync)
        state.activeLayerChanged.connect(lambda _uid: self.sync())
        self.sync()

    def _button(self, text: str, tip: str, slot) -> QPushButton:
        button = QPushButton(text, self)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    # ------------------------------------------------------------------ model -> view
    def sync(self) -> None:
        """Show the state: items are updated in place when the order is unchanged."""
        self._syncing = True
        try:
            doc = self.state.doc
            layers = list(reversed(doc.layers)) if doc else []
            uids = [self.list.item(i).data(UID_ROLE) for i in range(self.list.count())]
            if uids != [layer.uid for layer in layers]:
                self.list.clear()
                for layer in layers:
                    item = QListWidgetItem()
                    item.setData(UID_ROLE, layer.uid)
                    flags = Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsUserCheckable
                    item.setFlags(item.flags() | flags)
                    self.list.addItem(item)
            for row, layer in enumerate(layers):
                self._show(self.list.item(row), layer)
            active = self.state.active_layer
            self.opacity.setValue(round(active.opacity * 100) if active else 100)
            for w in (self.up, self.down, self.delete, self.opacity):
                w.setEnabled(active is not None)
        finally:
            self._syncing = False

    def _show(self, item: QListWidgetItem, layer) -> None:
        if item.text() != layer.name:
            item.setText(layer.name)
        check = Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked
        if item.checkState() != check:
            item.setCheckState(check)
        if layer.source_uid is not None:
            item.setToolTip("edit result: the source layer below is unchanged")
        if layer.uid == self.state.active_uid and self.list.currentItem() is not item:
            self.list.setCurrentItem(item)

    def item_for(self, uid: int) -> QListWidgetItem | None:
        for row in range(self.list.count()):
            if self.list.item(row).data(UID_ROLE) == uid:
                return self.list.item(row)
        return None

    # ------------------------------------------------------------------ view -> model
    def _on_current(self, item: QListWidgetItem | None, _previous) -> None:
        if not self._syncing and item is not None:
            self.state.set_active(item.data(UID_ROLE))

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._syncing:
            return
        uid = item.data(UID_ROLE)
        layer = self.state.doc.layer(uid) if self.state.doc else None
        if layer is None:
            return
        visible = item.checkState() == Qt.CheckState.Checked
        if visible != layer.visible:
            self.state.set_visible(uid, visible)
        elif item.text().strip() and item.text() != layer.name:
            self.state.rename_layer(uid, item.text())
        else:
            self.sync()  # an empty name is refused: show the old one again

    def _move(self, delta: int) -> None:
        uid = self.state.active_uid
        if uid is not None:
            self.state.move_layer(uid, self.state.doc.index_of(uid) + delta)

    def _delete(self) -> None:
        if self.state.active_uid is not None:
            self.state.delete_layer(self.state.active_uid)

    def _on_opacity(self, value: int) -> None:
        if not self._syncing and self.state.active_uid is not None:
            self.state.set_opacity(self.state.active_uid, value / 100)
