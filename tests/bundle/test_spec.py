"""build.spec's per-OS choices, with PyInstaller's build steps replaced by recorders and the
platform faked (Windows and macOS builds cannot run here; the Linux build itself is the slow
test_bundle.py). Also: a bundle's program named cds-edit is the CLI."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


class Step:
    """Stands in for Analysis/PYZ/EXE/COLLECT/BUNDLE: records its arguments."""

    made: list[Step] = []

    def __init__(self, *args, **kwargs):
        self.kind, self.args, self.kwargs = type(self).__name__, args, kwargs
        self.scripts, self.pure, self.binaries, self.datas = ["main"], [], [], []
        Step.made.append(self)


def _build(platform: str, dist: Path, monkeypatch) -> dict[str, list[Step]]:
    hooks = types.ModuleType("PyInstaller.utils.hooks")
    hooks.collect_data_files = lambda *a, **k: []
    hooks.collect_submodules = lambda *a, **k: []
    hooks.copy_metadata = lambda *a, **k: []
    for name in ("PyInstaller", "PyInstaller.utils"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "PyInstaller.utils.hooks", hooks)
    monkeypatch.setattr(sys, "platform", platform)
    Step.made = []
    namespace = {"SPECPATH": str(ROOT), "DISTPATH": str(dist), "__name__": "__main__"}
    for kind in ("Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE"):
        namespace[kind] = type(kind, (Step,), {})
    exec(
        compile((ROOT / "build.spec").read_text(encoding="utf-8"), "build.spec", "exec"), namespace
    )
    steps: dict[str, list[Step]] = {}
    for step in Step.made:
        steps.setdefault(step.kind, []).append(step)
    return steps


def _programs(steps) -> dict[str, bool]:
    return {exe.kwargs["name"]: exe.kwargs["console"] for exe in steps["EXE"]}


def test_windows_gets_a_windowed_app_and_a_console_cli(tmp_path, monkeypatch):
    steps = _build("win32", tmp_path, monkeypatch)
    assert _programs(steps) == {"cds-desktop": False, "cds-edit": True}
    assert steps["COLLECT"][0].args[:2] == tuple(steps["EXE"])  # both in one folder
    assert "BUNDLE" not in steps
    assert not (tmp_path / "cds-desktop" / "cds-edit").exists()  # cds-edit.exe instead


def test_macos_gets_an_unsigned_app_bundle_and_the_launcher(tmp_path, monkeypatch):
    monkeypatch.delenv("CDS_CODESIGN_IDENTITY", raising=False)
    steps = _build("darwin", tmp_path, monkeypatch)
    assert _programs(steps) == {"cds-desktop": False}
    bundle = steps["BUNDLE"][0]
    assert bundle.args == (steps["COLLECT"][0],) and bundle.kwargs["name"] == "cds-desktop.app"
    assert bundle.kwargs["bundle_identifier"]
    assert all(exe.kwargs.get("codesign_identity") is None for exe in steps["EXE"])
    assert os.access(tmp_path / "cds-desktop" / "cds-edit", os.X_OK)


def test_macos_signs_with_a_developer_id_when_given(tmp_path, monkeypatch):
    monkeypatch.setenv("CDS_CODESIGN_IDENTITY", "Developer ID Application: Someone (TEAM123)")
    monkeypatch.setenv("CDS_ENTITLEMENTS", "/path/entitlements.plist")
    exe = _build("darwin", tmp_path, monkeypatch)["EXE"][0]
    assert exe.kwargs["codesign_identity"] == "Developer ID Application: Someone (TEAM123)"
    assert exe.kwargs["entitlements_file"] == "/path/entitlements.plist"


def test_linux_is_one_console_program_and_the_launcher(tmp_path, monkeypatch):
    steps = _build("linux", tmp_path, monkeypatch)
    assert _programs(steps) == {"cds-desktop": True}
    assert "BUNDLE" not in steps
    launcher = tmp_path / "cds-desktop" / "cds-edit"
    assert os.access(launcher, os.X_OK)
    assert launcher.read_text().splitlines()[-1] == 'exec "${0%/*}/cds-desktop" --edit "$@"'


@pytest.mark.parametrize("platform", ["linux", "win32", "darwin"])
def test_every_platform_bundles_resources_and_leaves_dev_tools_out(tmp_path, monkeypatch, platform):
    analysis = _build(platform, tmp_path, monkeypatch)["Analysis"][0]
    assert analysis.args[0] == [str(ROOT / "cds_desktop" / "__main__.py")]
    assert (str(ROOT / "resources"), "resources") in analysis.kwargs["datas"]
    assert {"pytest", "tests", "ruff"} <= set(analysis.kwargs["excludes"])


def test_a_bundled_program_named_cds_edit_is_the_cli(monkeypatch, capsys):
    from cds_desktop import __main__ as entry

    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(Path("C:/Program Files/cds-desktop/cds-edit.exe")))
    assert entry.invoked_as_cds_edit()
    assert entry.main(["missing.png", "--source", "a", "--target", "b"]) == 2
    assert "cds-edit: error: image missing.png: file not found" in capsys.readouterr().err
    monkeypatch.setattr(sys, "executable", "/opt/cds-desktop/cds-desktop")
    assert not entry.invoked_as_cds_edit()
