"""tools/build_plugins.py: complete, reproducible zips written atomically."""

from __future__ import annotations

import stat
import zipfile

from .conftest import ROOT


def test_zips_hold_the_plugins_with_the_bridge_client_vendored(build_tool, tmp_path):
    krita_zip, gimp_zip = build_tool.build(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cds-gimp.zip", "cds-krita.zip"]
    with zipfile.ZipFile(krita_zip) as z:
        names = set(z.namelist())
        assert {"cds_krita.desktop", "cds_krita/", "cds_krita/__init__.py"} <= names
        assert "X-KDE-Library=cds_krita" in z.read("cds_krita.desktop").decode()
        for module in build_tool.VENDORED:
            vendored = z.read(f"cds_krita/cds_bridge/{module}")
            assert vendored == (ROOT / "plugin_bridge" / module).read_bytes()
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    with zipfile.ZipFile(gimp_zip) as z:
        script = z.getinfo("cds_gimp/cds_gimp.py")
        assert (script.external_attr >> 16) & stat.S_IXUSR
        for module in ("protocol.py", "client.py", "pngcodec.py", "plugin_common.py"):
            vendored = z.read(f"cds_gimp/cds_bridge/{module}")
            assert vendored == (ROOT / "plugin_bridge" / module).read_bytes()


def test_builds_are_reproducible(build_tool, tmp_path):
    first = [p.read_bytes() for p in build_tool.build(tmp_path / "a")]
    second = [p.read_bytes() for p in build_tool.build(tmp_path / "b")]
    assert first == second


def test_main_reports_errors_in_one_line(build_tool, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert build_tool.main(["--out", str(blocker / "sub")]) == 1
    assert "build_plugins:" in caplog.text
    assert build_tool.main(["--out", str(tmp_path / "ok")]) == 0
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == ["cds-gimp.zip", "cds-krita.zip"]
