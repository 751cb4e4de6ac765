"""Krita glue: the docker (a DockWidget holding :class:`CdsPanel`) and a small extension.

Imported only inside Krita (it needs the ``krita`` module); everything testable lives in
:mod:`.logic`, :mod:`.session` and :mod:`.panel`.
"""

from __future__ import annotations

import logging

import krita

from .logic import KritaDocument, KritaNode
from .panel import POLL_MS, CdsPanel, no_document_error
from .qt import QtCore, QtWidgets
from .session import Background, ping_in_background, user_message

log = logging.getLogger(__name__)

DOCKER_ID = "cds_krita_docker"
CHECK_ACTION_ID = "cds_krita_check_bridge"
TITLE = "CDS Edit"


def active_target() -> tuple[KritaDocument, KritaNode]:
    """The active document and its active layer (the panel checks the layer)."""
    doc = krita.Krita.instance().activeDocument()
    if doc is None:
        raise no_document_error()
    return doc, doc.activeNode()


class CdsDocker(krita.DockWidget):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(TITLE)
        self.panel = CdsPanel(active_target, parent=self)
        self.setWidget(self.panel)

    def canvasChanged(self, canvas) -> None:
        """Required by DockWidget; the panel asks for the active document on each edit."""


class CdsExtension(krita.Extension):
    """Adds Tools > Scripts > "CDS: Check Bridge Connection". The ping runs on a worker
    thread (a QTimer waits for it), so a missing bridge never freezes Krita."""

    def __init__(self, parent) -> None:
        super().__init__(parent)
        self.check: Background | None = None
        self.check_timer = QtCore.QTimer()
        self.check_timer.setInterval(POLL_MS)
        self.check_timer.timeout.connect(self._check_answered)

    def setup(self) -> None:
        pass

    def createActions(self, window) -> None:
        action = window.createAction(
            CHECK_ACTION_ID, "CDS: Check Bridge Connection", "tools/scripts"
        )
        action.triggered.connect(self.check_bridge)

    def check_bridge(self) -> None:
        if self.check is None:  # else the running check answers
            self.check = ping_in_background()
            self.check_timer.start()

    def _check_answered(self) -> None:
        if self.check is None or not self.check.done():
            return
        self.check_timer.stop()
        check, self.check = self.check, None
        parent = krita.Krita.instance().activeWindow()
        parent = parent.qwindow() if parent is not None else None
        try:
            seconds = check.outcome()
        except Exception as exc:  # shown to the user, never a traceback
            QtWidgets.QMessageBox.warning(parent, TITLE, user_message(exc))
            return
        QtWidgets.QMessageBox.information(
            parent, TITLE, f"the cds-desktop bridge answered in {seconds * 1000:.0f} ms"
        )


def register(app) -> None:
    """Called once by the package's __init__ when Krita loads the plug-in."""
    app.addDockWidgetFactory(
        krita.DockWidgetFactory(DOCKER_ID, krita.DockWidgetFactoryBase.DockRight, CdsDocker)
    )
    app.addExtension(CdsExtension(app))
