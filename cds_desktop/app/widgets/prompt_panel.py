"""Prompt panel: model picker, prompts, CDS/DDS knobs, seed and the Edit button."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from cds_desktop.engine.errors import EditError
from cds_desktop.engine.settings import EditSettings

from .. import model_choice
from ..editing import EditInputs

MAX_SEED = 2**31 - 1
PICK_REPO, PICK_FOLDER, PICK_FILE = "<repo>", "<folder>", "<file>"
DEFAULTS = EditSettings()


class PromptPanel(QWidget):
    editRequested = pyqtSignal()
    modelChanged = pyqtSignal(str)

    def __init__(self, custom_models: list[str] | None = None, parent=None) -> None:
        super().__init__(parent)
        self._custom = list(custom_models or [])
        self._model = model_choice.DEMO
        # dialogs are attributes so tests can replace them
        self.ask_repo: Callable[[], str | None] = self._ask_repo
        self.ask_folder: Callable[[], str | None] = self._ask_folder
        self.ask_file: Callable[[], str | None] = self._ask_file
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.model = QComboBox(self)
        self.model.setToolTip("The diffusion model used for edits")
        self.model.activated.connect(self._on_model_activated)
        form.addRow("Model", self.model)
        self.source = QLineEdit(self)
        self.source.setPlaceholderText("what the image shows, e.g. a red circle")
        form.addRow("Source prompt", self.source)
        self.targets = QPlainTextEdit(self)
        self.targets.setPlaceholderText(
            "what it should become; one per line: each gives its own result layer"
        )
        self.targets.setFixedHeight(64)
        self.targets.setTabChangesFocus(True)
        form.addRow("Target prompt(s)", self.targets)
        self.mode = QComboBox(self)
        self.mode.addItem("CDS (keeps structure)", "cds")
        self.mode.addItem("DDS (baseline, w_cut = 0)", "dds")
        self.mode.currentIndexChanged.connect(self._on_mode)
        form.addRow("Mode", self.mode)
        self.steps = self._spin(1, 5000, DEFAULTS.steps, "optimisation steps (published: 200)")
        form.addRow("Steps", self.steps)
        self.w_cut = QLineEdit(self)
        self.w_cut.setPlaceholderText("model default")
        self.w_cut.setToolTip("Weight of the CUT (PatchNCE) term; empty = the model's default")
        form.addRow("w_cut", self.w_cut)
        self.guidance = QDoubleSpinBox(self)
        self.guidance.setRange(0.0, 100.0)
        self.guidance.setSingleStep(0.5)
        self.guidance.setValue(DEFAULTS.guidance_scale)
        form.addRow("Guidance", self.guidance)
        form.addRow("Seed", self._seed_row())
        self.working_size = QLineEdit(self)
        self.working_size.setPlaceholderText("model default")
        self.working_size.setToolTip("Long side of the edited region for the model, in pixels")
        form.addRow("Working size", self.working_size)
        self.edit_button = QPushButton("Edit", self)
        self.edit_button.setToolTip(
            "Edit the active layer: one run, one result layer per target prompt (Ctrl+Return)"
        )
        self.edit_button.setDefault(True)
        self.edit_button.clicked.connect(self.editRequested)
        form.addRow(self.edit_button)
        self._rebuild_models()

    def _spin(self, lo: int, hi: int, value: int, tip: str) -> QSpinBox:
        spin = QSpinBox(self)
        spin.setRange(lo, hi)
        spin.setValue(value)
        spin.setToolTip(tip)
        return spin

    def _seed_row(self) -> QWidget:
        box = QWidget(self)
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        self.seed = self._spin(0, MAX_SEED, 0, "random seed: same inputs + seed = same result")
        self.seed_lock = QCheckBox("lock", box)
        self.seed_lock.setToolTip("Keep this seed; unlocked, each Edit draws a new one")
        self.seed_lock.setChecked(True)
        dice = QPushButton("New", box)
        dice.setToolTip("Draw a random seed")
        dice.clicked.connect(self.randomise_seed)
        row.addWidget(self.seed, 1)
        row.addWidget(self.seed_lock)
        row.addWidget(dice)
        return box

    # ------------------------------------------------------------------ model picker
    @property
    def model_spec(self) -> str:
        return self._model

    def set_model(self, spec: str) -> None:
        if spec not in (model_choice.DEMO, model_choice.TINY_RANDOM) and spec not in self._custom:
            self._custom.insert(0, spec)
        self._model = spec
        self._rebuild_models()
        self.modelChanged.emit(spec)

    @property
    def custom_models(self) -> list[str]:
        return list(self._custom)

    def _rebuild_models(self) -> None:
        combo = self.model
        combo.blockSignals(True)
        combo.clear()
        specs = [model_choice.DEMO, *self._custom]
        if self._model == model_choice.TINY_RANDOM:
            specs.append(model_choice.TINY_RANDOM)
        for spec in specs:
            combo.addItem(model_choice.entry_text(spec), spec)
            combo.setItemData(combo.count() - 1, spec, Qt.ItemDataRole.ToolTipRole)
        combo.insertSeparator(combo.count())
        combo.addItem("Hugging Face repo id...", PICK_REPO)
        combo.addItem("Local diffusers folder...", PICK_FOLDER)
        combo.addItem(".safetensors / .ckpt file...", PICK_FILE)
        if self._model != model_choice.TINY_RANDOM:
            combo.insertSeparator(combo.count())
            combo.addItem(model_choice.RANDOM_ENTRY, model_choice.TINY_RANDOM)
        combo.setCurrentIndex(combo.findData(self._model))
        combo.blockSignals(False)

    def _on_model_activated(self, index: int) -> None:
        data = self.model.itemData(index)
        picked = {PICK_REPO: self.ask_repo, PICK_FOLDER: self.ask_folder, PICK_FILE: self.ask_file}
        spec = picked[data]() if data in picked else data
        if spec:
            self.set_model(str(spec).strip())
        else:
            self._rebuild_models()  # dialog cancelled: show the current model again

    def _ask_repo(self) -> str | None:
        text, ok = QInputDialog.getText(
            self, "Hugging Face model", "Repo id (SD-1.x, SD-2.x or SDXL):", text=model_choice.SD15
        )
        return text.strip() if ok and text.strip() else None

    def _ask_folder(self) -> str | None:
        return QFileDialog.getExistingDirectory(self, "Diffusers model folder") or None

    def _ask_file(self) -> str | None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Model checkpoint", "", "Checkpoints (*.safetensors *.ckpt)"
        )
        return path or None

    # ------------------------------------------------------------------ seed / mode
    def randomise_seed(self) -> int:
        self.seed.setValue(random.randint(0, MAX_SEED))
        return self.seed.value()

    def next_seed(self) -> int:
        """The seed for the next Edit: the shown one if locked, else a new random one."""
        return self.seed.value() if self.seed_lock.isChecked() else self.randomise_seed()

    def _on_mode(self) -> None:
        self.w_cut.setEnabled(self.mode.currentData() == "cds")

    # ------------------------------------------------------------------ values
    def source_prompt(self) -> str:
        return self.source.text().strip()

    def target_prompts(self) -> list[str]:
        return [t.strip() for t in self.targets.toPlainText().splitlines() if t.strip()]

    def snapshot(self) -> EditInputs:
        """What Edit should run (draws a new seed when the seed is not locked); EditError
        (readable) for a bad field."""
        settings = self.build_settings(self.next_seed())
        return EditInputs(
            self.source_prompt(), tuple(self.target_prompts()), settings, self.model_spec
        )

    def build_settings(self, seed: int) -> EditSettings:
        """EditSettings from the fields; EditError (readable) for a bad field."""
        return EditSettings(
            mode=self.mode.currentData(),
            steps=self.steps.value(),
            guidance_scale=float(self.guidance.value()),
            w_cut=_optional(self.w_cut.text(), float, "w_cut", "a number"),
            seed=int(seed),
            working_size=_optional(self.working_size.text(), int, "working size", "an integer"),
        )

    def values(self) -> dict[str, Any]:
        return {
            "source": self.source.text(),
            "targets": self.targets.toPlainText(),
            "mode": self.mode.currentData(),
            "steps": self.steps.value(),
            "w_cut": self.w_cut.text(),
            "guidance": self.guidance.value(),
            "seed": self.seed.value(),
            "seed_locked": self.seed_lock.isChecked(),
            "working_size": self.working_size.text(),
        }

    def set_values(self, values: dict[str, Any]) -> None:
        """Restore values() output (unknown or mistyped keys are ignored)."""
        setters = {
            "source": (str, self.source.setText),
            "targets": (str, self.targets.setPlainText),
            "mode": (str, lambda v: self.mode.setCurrentIndex(max(0, self.mode.findData(v)))),
            "steps": (int, self.steps.setValue),
            "w_cut": (str, self.w_cut.setText),
            "guidance": (float, self.guidance.setValue),
            "seed": (int, self.seed.setValue),
            "seed_locked": (bool, self.seed_lock.setChecked),
            "working_size": (str, self.working_size.setText),
        }
        for key, (kind, setter) in setters.items():
            value = values.get(key)
            if isinstance(value, kind) or (kind is float and isinstance(value, int)):
                setter(value)

    def apply_edit(self, source: str, target: str, settings: dict[str, Any]) -> None:
        """Show the settings of a past edit (from the history)."""
        self.set_values(
            {
                "source": source,
                "targets": target,
                "mode": settings.get("mode", "cds"),
                "steps": settings.get("steps", DEFAULTS.steps),
                "w_cut": _text(settings.get("w_cut")),
                "guidance": settings.get("guidance_scale", DEFAULTS.guidance_scale),
                "seed": settings.get("seed", 0),
                "seed_locked": True,
                "working_size": _text(settings.get("working_size")),
            }
        )


def _optional(text: str, kind, name: str, expected: str):
    text = text.strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise EditError(
            f"{name} {text!r}: expected {expected}, or empty for the model default"
        ) from None


def _text(value) -> str:
    return "" if value is None else str(value)
