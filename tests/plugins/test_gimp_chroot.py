"""tests/plugins/gimp_chroot.py without building anything: which mirror it picks from the
host's apt sources, and that an unreachable mirror is reported as such (loopback only)."""

from __future__ import annotations

import socket

import pytest

from . import gimp_chroot

DEB822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


@pytest.fixture
def apt(tmp_path, monkeypatch):
    monkeypatch.delenv("CDS_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    return tmp_path


def test_mirror_from_deb822_sources(apt):
    (apt / "sources.list.d" / "debian.sources").write_text(DEB822)
    assert gimp_chroot.host_mirror(apt) == "http://mirror.example/debian"


def test_mirror_from_one_line_sources_skips_security_and_options(apt):
    (apt / "sources.list").write_text(
        "# a comment\n"
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://ftp.example/debian/ bookworm main\n"
    )
    assert gimp_chroot.host_mirror(apt) == "http://ftp.example/debian"


def test_disabled_stanzas_and_other_archives_are_ignored(apt):
    (apt / "sources.list.d" / "a.sources").write_text(
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n"
    )
    (apt / "sources.list.d" / "b.list").write_text("deb https://packages.example/apt stable main\n")
    assert gimp_chroot.host_mirror(apt) == gimp_chroot.DEFAULT_MIRROR


def test_mirror_override_from_the_environment(apt, monkeypatch):
    (apt / "sources.list.d" / "debian.sources").write_text(DEB822)
    monkeypatch.setenv("CDS_DEBIAN_MIRROR", "http://local.example/debian/")
    assert gimp_chroot.host_mirror(apt) == "http://local.example/debian"


def test_an_unreachable_mirror_says_so_in_one_line():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(gimp_chroot.Unreachable) as info:
        gimp_chroot.check_mirror(f"http://127.0.0.1:{port}/debian", timeout=5)
    message = str(info.value)
    assert message.startswith("debootstrap cannot reach the Debian mirror http://127.0.0.1:")
    assert "\n" not in message


def test_without_root_or_sudo_it_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(gimp_chroot.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(gimp_chroot.shutil, "which", lambda name, path=None: None)
    with pytest.raises(gimp_chroot.Unavailable, match="needs root or passwordless sudo"):
        gimp_chroot.ensure(tmp_path / "chroot")
    assert not (tmp_path / "chroot").exists()
