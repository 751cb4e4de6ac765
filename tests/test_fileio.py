"""Atomic writes (cds_desktop.fileio and the plug-ins' plugin_bridge.fileio): normal
permissions, no partial or temporary file on failure, os.replace retried on PermissionError."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from cds_desktop import fileio as app_fileio
from plugin_bridge import fileio as plugin_fileio

IMPLEMENTATIONS = [
    pytest.param(app_fileio.write_bytes_atomic, app_fileio, id="cds_desktop.fileio"),
    pytest.param(plugin_fileio.write_bytes_atomic, plugin_fileio, id="plugin_bridge.fileio"),
]
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


@pytest.fixture()
def umask():
    """Set a umask for the test; the previous one comes back afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@posix_only
@pytest.mark.parametrize("write, module", IMPLEMENTATIONS)
@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_new_files_get_what_open_gives_under_the_umask(
    write, module, umask, tmp_path, mask, expected
):
    umask(mask)
    write(tmp_path / "out.png", b"data")
    with open(tmp_path / "reference", "wb") as f:  # what a plain open() gives
        f.write(b"x")
    assert _mode(tmp_path / "out.png") == _mode(tmp_path / "reference") == expected
    assert (tmp_path / "out.png").read_bytes() == b"data"


@posix_only
@pytest.mark.parametrize("write, module", IMPLEMENTATIONS)
def test_an_existing_file_keeps_its_mode(write, module, umask, tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write(target, b"new")
    assert target.read_bytes() == b"new" and _mode(target) == 0o640


@pytest.mark.parametrize("write, module", IMPLEMENTATIONS)
def test_replace_is_retried_while_the_target_is_held_open(write, module, tmp_path, monkeypatch):
    """Windows: a viewer or virus scanner holding the target makes os.replace fail for a while."""
    real_replace, calls = os.replace, []

    def busy_twice(src, dst):
        calls.append(dst)
        if len(calls) <= 2:
            raise PermissionError(13, "The process cannot access the file")
        real_replace(src, dst)

    monkeypatch.setattr(module.os, "replace", busy_twice)
    monkeypatch.setattr(module, "REPLACE_DELAYS", (0.001,) * 5)
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    write(target, b"new")
    assert len(calls) == 3
    assert target.read_bytes() == b"new" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("write, module", IMPLEMENTATIONS)
def test_a_target_held_for_good_fails_cleanly(write, module, tmp_path, monkeypatch):
    calls = []

    def always_busy(src, dst):
        calls.append(dst)
        raise PermissionError(13, "The process cannot access the file")

    monkeypatch.setattr(module.os, "replace", always_busy)
    monkeypatch.setattr(module, "REPLACE_DELAYS", (0.001,) * 5)
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(PermissionError):
        write(target, b"new")
    assert len(calls) == len(module.REPLACE_DELAYS) + 1
    assert target.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_a_failing_writer_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "doc.ora"
    target.write_bytes(b"old")

    def half_then_fail(f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        app_fileio.atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.ora"]


def test_atomic_path_replaces_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "encoder.onnx"
    with app_fileio.atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.exists()
        tmp.write_bytes(b"graph")
    assert target.read_bytes() == b"graph" and _leftovers(tmp_path) == []
    with pytest.raises(RuntimeError), app_fileio.atomic_path(target) as tmp:
        tmp.write_bytes(b"half a graph")
        raise RuntimeError("exporter failed")
    assert target.read_bytes() == b"graph" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("write, module", IMPLEMENTATIONS)
def test_a_missing_folder_is_an_oserror_and_nothing_is_created(write, module, tmp_path):
    with pytest.raises(FileNotFoundError):
        write(tmp_path / "missing" / "out.png", b"data")
    assert list(tmp_path.iterdir()) == []
