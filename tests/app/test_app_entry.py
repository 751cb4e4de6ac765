"""Entry points: main(argv) argument errors and the --screenshot mode."""

from __future__ import annotations

from PIL import Image

from cds_desktop.app import main, screenshot


def test_screenshot_writes_a_png_of_the_window(qapp, circle_png, tmp_path, temp_settings):
    out = tmp_path / "shot.png"
    assert screenshot(out, circle_png, model="tiny-random", demo_mask=True, size=(900, 600)) == 0
    with Image.open(out) as im:
        assert im.size == (900, 600)
        # the canvas shows the image: some pixel has the disc's red
        pixels = im.convert("RGB").getdata()
        assert any(r > 180 and g < 80 and b < 80 for r, g, b in pixels)
    assert not any(temp_settings.rglob("*.ini"))  # the user's preferences were not touched


def test_screenshot_of_a_missing_image_fails_cleanly(qapp, tmp_path, capsys):
    assert screenshot(tmp_path / "shot.png", tmp_path / "missing.png") == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "shot.png").exists()


def test_bad_arguments_give_one_line(capsys):
    assert main(["--no-such-flag"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cds-desktop: unrecognized arguments") and err.count("\n") == 1


def test_main_screenshot_mode(qapp, circle_png, tmp_path):
    out = tmp_path / "main.png"
    assert main(["--screenshot", str(out), str(circle_png), "--model", "tiny-random"]) == 0
    assert out.is_file()


def test_the_editor_refuses_to_start_without_a_display(monkeypatch, capsys):
    from cds_desktop import app as app_module

    monkeypatch.setattr(app_module, "_has_display", lambda: False)
    monkeypatch.setattr("PyQt6.QtWidgets.QApplication.instance", staticmethod(lambda: None))
    assert main([]) == 2
    assert "no display found" in capsys.readouterr().err


def test_cpu_threads_are_capped_before_the_engine_loads(monkeypatch):
    import os
    import sys

    from cds_desktop.app.settings import auto_cpu_threads, limit_cpu_threads

    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(variable, "")
    assert limit_cpu_threads(0) is None  # torch is already imported here: too late
    monkeypatch.delitem(sys.modules, "torch")
    assert limit_cpu_threads(0) == auto_cpu_threads() == max(1, (os.cpu_count() or 2) - 1)
    assert os.environ["OMP_NUM_THREADS"] == str(auto_cpu_threads())
    assert limit_cpu_threads(3) is None  # now set: the environment wins
