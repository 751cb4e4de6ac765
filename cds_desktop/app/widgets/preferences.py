"""Preferences dialog: compute device and VAE backend (the model is picked in the panel)."""

from __future__ import annotations

from PyQt6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel

from ..settings import DEVICES, VAE_BACKENDS, Preferences


class PreferencesDialog(QDialog):
    def __init__(self, prefs: Preferences, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.prefs = prefs
        form = QFormLayout(self)
        self.device = QComboBox(self)
        self.device.addItems(DEVICES)
        self.device.setCurrentText(prefs.device)
        form.addRow("Device", self.device)
        self.vae = QComboBox(self)
        self.vae.addItems(VAE_BACKENDS)
        self.vae.setCurrentText(prefs.vae_backend)
        form.addRow("VAE backend", self.vae)
        note = QLabel("auto picks CUDA when available, else CPU. Changes apply to the next edit.")
        note.setWordWrap(True)
        form.addRow(note)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def accept(self) -> None:
        self.prefs.device = self.device.currentText()
        self.prefs.vae_backend = self.vae.currentText()
        super().accept()
