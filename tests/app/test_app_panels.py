"""Panels: model picker, preferences dialog, layers panel, recent files."""

from __future__ import annotations

from PyQt6.QtCore import Qt

from cds_desktop.app.widgets.preferences import PreferencesDialog
from cds_desktop.app.widgets.prompt_panel import PICK_FILE, PICK_FOLDER, PICK_REPO


def _pick(panel, data) -> None:
    panel.model.activated.emit(panel.model.findData(data))


def test_model_picker_entries_and_dialogs(window, tmp_path):
    panel = window.prompt
    texts = [panel.model.itemText(i) for i in range(panel.model.count())]
    assert "shapes-demo (demo model)" in texts
    assert "test fixture: random weights (tiny-random)" in texts
    panel.ask_folder = lambda: str(tmp_path)
    _pick(panel, PICK_FOLDER)
    assert panel.model_spec == str(tmp_path)
    assert tmp_path.name in window.windowTitle() and "RANDOM" not in window.windowTitle()
    panel.ask_repo = lambda: None  # cancelled: nothing changes
    _pick(panel, PICK_REPO)
    assert panel.model_spec == str(tmp_path)
    panel.ask_file = lambda: str(tmp_path / "model.safetensors")
    _pick(panel, PICK_FILE)
    assert panel.model_spec.endswith("model.safetensors")
    _pick(panel, "shapes-demo")
    assert "shapes-demo (demo model" in window.windowTitle()
    window.close()
    assert window.prefs.model == "shapes-demo"
    assert str(tmp_path) in window.prefs.custom_models


def test_preferences_dialog_saves_device_vae_and_threads(qtbot, prefs):
    dialog = PreferencesDialog(prefs)
    qtbot.addWidget(dialog)
    dialog.device.setCurrentText("cpu")
    dialog.vae.setCurrentText("onnx")
    dialog.threads.setValue(1)
    dialog.accept()
    assert (prefs.device, prefs.vae_backend, prefs.cpu_threads) == ("cpu", "onnx", 1)


def test_layers_panel_drives_the_state(window, circle_png):
    window.open_path(circle_png)
    panel = window.layers
    item = panel.list.item(0)
    item.setCheckState(Qt.CheckState.Unchecked)
    assert not window.state.active_layer.visible
    item.setText("renamed")
    assert window.state.active_layer.name == "renamed"
    panel.opacity.setValue(40)
    assert window.state.active_layer.opacity == 0.4
    window.state.undo.undo()
    window.state.undo.undo()
    assert panel.list.item(0).text() == "circle" and panel.opacity.value() == 100


def test_recent_files_menu_and_missing_file(window, circle_png, tmp_path):
    window.open_path(circle_png)
    gone = tmp_path / "gone.png"
    window.prefs.add_recent_file(str(gone))
    window.recent_menu.aboutToShow.emit()  # what opening the menu does
    actions = [a.text() for a in window.recent_menu.actions()]
    assert actions[0] == str(gone) and str(circle_png.resolve()) in actions
    window.recent_menu.actions()[0].trigger()
    assert "no longer exists" in window.progress.error.text()
    assert str(gone) not in window.prefs.recent_files
