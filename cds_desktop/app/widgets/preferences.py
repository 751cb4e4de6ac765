"""Preferences dialog: compute device and VAE backend (the model is picked in the panel)."""

from __future__ import annotations

import os

from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QSpinBox,
)

from ..settings import DEVICES, VAE_BACKENDS, Preferences, auto_cpu_threads


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
        self.threads = QSpinBox(self)
        self.threads.setRange(0, os.cpu_count() or 1)
        self.threads.setSpecialValueText(f"auto ({auto_cpu_threads()})")
        self.threads.setValue(prefs.cpu_threads)
        self.threads.setToolTip(
            "CPU threads for edits (applies at the next start); auto keeps one core free for "
            "the window. OMP_NUM_THREADS in the environment overrides it."
        )
        form.addRow("CPU threads", self.threads)
        note = QLabel(
            "Device auto picks CUDA when available, then MPS (Apple Silicon), else CPU. Device "
            "and VAE apply to the next edit, CPU threads at the next start."
        )
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
        self.prefs.cpu_threads = self.threads.value()
        super().accept()
