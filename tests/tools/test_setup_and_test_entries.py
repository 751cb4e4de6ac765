"""tools/setup.py and tools/test.py on every OS. Windows and macOS cannot run here: their
branches are exercised with the platform passed in (venv layout, commands built)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

LDD_MISSING = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6Gui.so.6 => /venv/PyQt6/Qt6/lib/libQt6Gui.so.6 (0x00007f)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)
"""


@pytest.mark.parametrize(
    "platform, python, lint",
    [
        ("linux", "bin/python", "bin/lint-imports"),
        ("darwin", "bin/python", "bin/lint-imports"),
        ("win32", "Scripts/python.exe", "Scripts/lint-imports.exe"),
    ],
)
def test_venv_programs_per_platform(devenv, platform, python, lint):
    venv = Path("/x/.venv")
    assert devenv.venv_python(venv, platform) == venv / python
    assert devenv.venv_program("lint-imports", venv, platform) == venv / lint


@pytest.mark.parametrize(
    "platform, folder", [("linux", "bin"), ("win32", "Scripts"), ("darwin", "bin")]
)
def test_test_entry_runs_contracts_lint_format_and_pytest_with_the_venv(
    test_tool, platform, folder
):
    venv = Path("/x/.venv")
    steps = test_tool.checks(["-k", "cli"], slow=False, venv=venv, platform=platform)
    commands = [[str(c) for c in cmd] for _, cmd in steps]
    exe = ".exe" if platform == "win32" else ""
    python = str(venv / folder / f"python{exe}")
    assert commands[0] == [str(venv / folder / f"lint-imports{exe}")]
    assert commands[1][:4] == [python, "-m", "ruff", "check"]
    assert commands[2][:5] == [python, "-m", "ruff", "format", "--check"]
    assert commands[1][4:] == commands[2][5:] == list(test_tool.LINTED)
    assert commands[3] == [
        python,
        "-m",
        "pytest",
        "-q",
        "-m",
        "not slow",
        "-p",
        "no:cacheprovider",
        "-k",
        "cli",
    ]
    slow = test_tool.checks([], slow=True, venv=venv, platform=platform)[3][1]
    assert "not slow" not in slow


def test_test_environment_matches_ci(test_tool):
    env = test_tool.check_environment(
        {"PATH": "/bin", "OMP_NUM_THREADS": "4", "HF_HUB_OFFLINE": "0"}
    )
    assert env["QT_QPA_PLATFORM"] == "offscreen" and env["HF_HUB_OFFLINE"] == "1"
    assert env["OMP_NUM_THREADS"] == "4" and env["MKL_NUM_THREADS"] == "1"
    assert test_tool.check_environment({"QT_QPA_PLATFORM": "xcb"})["QT_QPA_PLATFORM"] == "xcb"


def test_setup_pins_torch_and_installs_the_extras_with_constraints(setup_tool):
    python = Path("/x/.venv/Scripts/python.exe")
    assert [str(c) for c in setup_tool.torch_command(python)][-1] == "torch==2.13.0"
    cpu = setup_tool.torch_command(python, "https://download.pytorch.org/whl/cpu")
    assert cpu[-2:] == ["--index-url", "https://download.pytorch.org/whl/cpu"]
    install, reference = setup_tool.install_commands(python)[-2:]
    assert install[0] == python and install[-2:] == ["-e", ".[app,onnx,dev]"]
    assert ["-c", "tools/constraints.txt"] == install[5:7]
    assert reference[-1] == "open-clip-torch" and "--no-deps" in reference


def test_the_stamp_changes_with_the_dependencies(setup_tool, tmp_path):
    for name in setup_tool.STAMPED_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    first = setup_tool.stamp_value(tmp_path)
    assert setup_tool.stamp_value(tmp_path) == first
    (tmp_path / "tools/constraints.txt").write_text("torch==9")
    assert setup_tool.stamp_value(tmp_path) != first


def test_missing_qt_libraries_are_named_with_their_packages(setup_tool):
    assert setup_tool.missing_in_ldd(LDD_MISSING) == [
        "libxcb-cursor.so.0",
        "libxcb-icccm.so.4",
        "libxcb-keysyms.so.1",
    ]
    message = setup_tool.qt_warning(setup_tool.missing_in_ldd(LDD_MISSING) + ["libodd.so.9"])
    assert "sudo apt install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libodd.so.9" in message
    assert message.startswith("warning:")


def test_qt_check_runs_ldd_on_the_xcb_plugin_only_on_linux(setup_tool, tmp_path):
    qt = tmp_path / "PyQt6"
    for rel in setup_tool.QT_XCB_FILES:
        (qt / rel).parent.mkdir(parents=True, exist_ok=True)
        (qt / rel).write_bytes(b"")
    calls = []

    def runner(cmd, **kwargs):
        calls.append(cmd)
        out = str(qt) if cmd[0] != "ldd" else LDD_MISSING
        return subprocess.CompletedProcess(cmd, 0, stdout=out, stderr="")

    warning = setup_tool.check_qt_libraries(Path("python"), platform="linux", runner=runner)
    assert [c[0] for c in calls] == ["python", "ldd", "ldd"]
    assert warning.count("libxcb-cursor0") == 1  # reported once though both files lack it
    calls.clear()
    assert setup_tool.check_qt_libraries(Path("python"), platform="win32", runner=runner) is None
    assert setup_tool.check_qt_libraries(Path("python"), platform="darwin", runner=runner) is None
    assert calls == []


def test_qt_check_is_silent_when_everything_is_there(setup_tool, tmp_path):
    qt = tmp_path / "PyQt6"
    (qt / setup_tool.QT_XCB_FILES[0]).parent.mkdir(parents=True)
    (qt / setup_tool.QT_XCB_FILES[0]).write_bytes(b"")

    def runner(cmd, **kwargs):
        out = str(qt) if cmd[0] != "ldd" else "\tlibxcb.so.1 => /lib/libxcb.so.1 (0x1)\n"
        return subprocess.CompletedProcess(cmd, 0, stdout=out, stderr="")

    assert setup_tool.check_qt_libraries(Path("python"), platform="linux", runner=runner) is None


def test_python_version_check(devenv):
    assert devenv.python_too_old((3, 12)) is None
    assert "3.10 or newer; this is 3.8" in devenv.python_too_old((3, 8))


@pytest.mark.parametrize(
    "platform, python", [("linux", "bin/python"), ("win32", "Scripts/python.exe")]
)
def test_bundle_build_uses_the_venv_and_the_one_spec(platform, python):
    from .conftest import load_tool

    tool = load_tool("build_bundle")
    venv = Path("/x/.venv")
    steps = [[str(c) for c in cmd] for cmd in tool.commands(venv, platform)]
    assert all(cmd[0] == str(venv / python) for cmd in steps)
    assert steps[1][1:3] == ["-m", "PyInstaller"] and steps[1][-1] == "build.spec"
    assert steps[2][-1] == "tools/build_plugins.py"
