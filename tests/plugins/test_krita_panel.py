"""The Krita docker's panel (plain Qt, here PyQt6 via pytest-qt) with a fake document.

Checks the Qt glue: Edit polls the bridge from a QTimer without blocking, Cancel reaches the
server, and every failure ends as one status line. test_krita_real.py runs the same panel on
Krita's PyQt5.
"""

from __future__ import annotations

import socket

import pytest

from .conftest import FAST_SETTINGS, import_from
from .fake_krita import FakeSelection, document_with_layer

pytest.importorskip("pytestqt")


@pytest.fixture(scope="module")
def panel_module(staged):
    return import_from(staged["krita"], "cds_krita.panel", ("cds_krita",))


@pytest.fixture
def make_panel(qtbot, panel_module):
    def make(doc, layer, **kw):
        panel = panel_module.CdsPanel(lambda: (doc, layer), **kw)
        qtbot.addWidget(panel)
        panel.source_edit.setText("a colourful gradient")
        panel.target_edit.setText("a red dog")
        panel.steps_spin.setValue(2)
        panel.extra_settings = dict(FAST_SETTINGS)
        return panel

    yield make


def test_edit_runs_from_the_timer_and_adds_the_layer(qtbot, make_panel, bridge, monkeypatch):
    server, config_home = bridge
    monkeypatch.setenv("CDS_CONFIG_DIR", str(config_home))
    monkeypatch.setenv("CDS_BRIDGE_PORT", str(server.port))
    doc, layer = document_with_layer(40, 32)
    doc.sel = FakeSelection.rectangle(10, 8, 12, 10)
    panel = make_panel(doc, layer)
    with qtbot.waitSignal(panel.finished, timeout=60000) as blocker:
        panel.edit_button.click()
        assert panel.busy and not panel.edit_button.isEnabled()  # returned at once
    ok, text = blocker.args
    assert ok, text
    assert [n.name() for n in doc.root.childNodes()] == ["Source", "a red dog"]
    assert panel.edit_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert panel.progress.value() == 100
    panel.shutdown()


@pytest.mark.parametrize("when", ["connecting", "submitted"])
def test_cancel_stops_the_job(qtbot, make_panel, bridge, monkeypatch, when):
    """Cancel while the worker connects (the worker closes the connection: the server
    cancels the job) or once the job reached the bridge (a cancel message)."""
    server, config_home = bridge
    monkeypatch.setenv("CDS_CONFIG_DIR", str(config_home))
    monkeypatch.setenv("CDS_BRIDGE_PORT", str(server.port))
    doc, layer = document_with_layer(40, 32)
    panel = make_panel(doc, layer)
    panel.steps_spin.setValue(2000)
    panel.extra_settings = {k: v for k, v in FAST_SETTINGS.items() if k != "steps"}
    with qtbot.waitSignal(panel.finished, timeout=60000) as blocker:
        panel.edit_button.click()
        if when == "submitted":
            qtbot.waitUntil(lambda: panel.session.job is not None and panel._submission is None)
        panel.cancel_button.click()
    assert blocker.args == [False, "cancelled"]
    assert [n.name() for n in doc.root.childNodes()] == ["Source"]
    panel.shutdown()


@pytest.fixture
def mute_listener():
    """A port that takes connections (the kernel's backlog) but never answers: connecting
    succeeds and the handshake waits until the client's timeout."""
    listener = socket.create_server(("127.0.0.1", 0))
    yield listener.getsockname()[1]
    listener.close()


def test_connecting_runs_off_the_gui_thread(
    qtbot, make_panel, panel_module, mute_listener, monkeypatch, tmp_path
):
    """Edit returns while the bridge has not answered (the GUI thread is free), Cancel ends
    at once, and a bridge that never answers ends as a TIMEOUT line from the worker."""
    token = tmp_path / "cds-desktop" / "bridge-token"
    token.parent.mkdir()
    token.write_text("x" * 64)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("CDS_BRIDGE_PORT", str(mute_listener))
    doc, layer = document_with_layer(8, 8)
    clients = []

    def factory():
        clients.append(panel_module.make_client(timeout=1.0))
        return clients[-1]

    panel = make_panel(doc, layer, client_factory=factory)
    with qtbot.waitSignal(panel.finished, timeout=1000) as blocker:
        panel.edit_button.click()
        assert panel.busy and panel.status.text() == "connecting to the bridge..."
        assert panel.cancel_button.isEnabled() and not panel.edit_button.isEnabled()
        panel.cancel_button.click()
    assert blocker.args == [False, "cancelled"] and panel.edit_button.isEnabled()
    qtbot.waitUntil(lambda: not clients[0].connected, timeout=5000)  # the worker closed it

    with qtbot.waitSignal(panel.finished, timeout=10000) as blocker:
        panel.edit_button.click()
        assert panel.busy  # returned before the bridge's (missing) answer
    ok, text = blocker.args
    assert not ok and "did not respond within 1 s" in text and "\n" not in text
    assert len(clients) == 2 and not clients[1].connected
    assert doc.root.childNodes() == [layer]
    panel.shutdown()


def test_failures_end_as_one_status_line(qtbot, make_panel, monkeypatch, tmp_path):
    token = tmp_path / "bridge-token"
    token.write_text("x" * 64)
    monkeypatch.setenv("CDS_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("CDS_BRIDGE_PORT", "1")  # nothing listens there
    doc, layer = document_with_layer(8, 8)
    panel = make_panel(doc, layer)
    with qtbot.waitSignal(panel.finished, timeout=5000) as blocker:
        panel.edit_button.click()
    assert blocker.args[0] is False and "cds-desktop --serve" in blocker.args[1]
    assert panel.status.text() == blocker.args[1] and panel.edit_button.isEnabled()

    layer._model = "GRAYA"
    with qtbot.waitSignal(panel.finished, timeout=5000) as blocker:
        panel.edit_button.click()
    assert "CDS needs RGB/Alpha" in blocker.args[1]
    assert doc.root.childNodes() == [layer]


def test_remote_bridge_from_the_panel_fields(qtbot, make_panel, tls_bridge, monkeypatch):
    """The Bridge/Fingerprint/Token fields: TLS to 127.0.0.2 with the token pasted (no token
    file readable, as in a sandboxed Krita); a wrong fingerprint is refused."""
    server, config_home = tls_bridge
    token = (config_home / "bridge-token").read_text().strip()
    monkeypatch.setenv("CDS_CONFIG_DIR", str(config_home / "unreadable"))  # no token file
    doc, layer = document_with_layer(40, 32)
    panel = make_panel(doc, layer)
    assert panel.token_edit.echoMode() != type(panel.token_edit.echoMode())(0)  # hidden
    panel.address_edit.setText(f"{server.host}:{server.port}")
    panel.token_edit.setText(token)
    panel.fingerprint_edit.setText(":".join(["AB"] * 32))
    with qtbot.waitSignal(panel.finished, timeout=60000) as blocker:
        panel.edit_button.click()
    ok, text = blocker.args
    assert not ok and "not the expected" in text
    panel.fingerprint_edit.setText(server.tls.fingerprint)
    with qtbot.waitSignal(panel.finished, timeout=60000) as blocker:
        panel.edit_button.click()
    ok, text = blocker.args
    assert ok, text
    assert [n.name() for n in doc.root.childNodes()] == ["Source", "a red dog"]
    panel.shutdown()
