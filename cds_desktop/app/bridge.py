"""The plug-in bridge inside the app: on/off, status, sharing the app's JobQueue.

Krita/GIMP edits then queue behind (and before) the app's own edits on one worker thread, so
one model is loaded once. Status callbacks come from server threads and are re-emitted here
with a queued connection.
"""

from __future__ import annotations

import logging
from typing import Any

from PyQt6.QtCore import QObject, Qt, pyqtSignal, pyqtSlot

from cds_desktop.bridge import BridgeServer, BridgeServerError, BridgeStatus
from cds_desktop.engine.jobs import JobQueue

log = logging.getLogger(__name__)


class BridgeControl(QObject):
    statusChanged = pyqtSignal(object)  # BridgeStatus (running False when stopped)
    _relay = pyqtSignal(object)

    def __init__(self, queue: JobQueue, options: dict[str, Any] | None = None, parent=None):
        super().__init__(parent)
        self.queue = queue
        self.options = dict(options or {})  # extra BridgeServer kwargs (tests: port=0, token)
        self.server: BridgeServer | None = None
        self.last_status: BridgeStatus | None = None
        self._relay.connect(self._on_status, Qt.ConnectionType.QueuedConnection)

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.running

    def start(self, model: str, device: str, vae_backend: str) -> str | None:
        """Start serving; returns None, or a one-line error for the user."""
        if self.running:
            return None
        try:
            self.server = BridgeServer(
                self.queue,
                model=model,
                device=device,
                vae_backend=vae_backend,
                on_status=self._relay.emit,
                **self.options,
            ).start()
        except (BridgeServerError, OSError) as exc:
            self.server = None
            return f"the plug-in bridge could not start: {exc}"
        return None

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    def configure(self, model: str, device: str, vae_backend: str) -> None:
        """Apply the app's model choice to the next plug-in edits."""
        if self.server is not None:
            self.server.model, self.server.device = model, device
            self.server.vae_backend = vae_backend

    @pyqtSlot(object)
    def _on_status(self, status: BridgeStatus) -> None:
        self.last_status = status
        self.statusChanged.emit(status)


def describe(status: BridgeStatus | None) -> str:
    if status is None or not status.running:
        return "Plug-in bridge: off"
    clients = f"{status.clients} client{'s' if status.clients != 1 else ''}"
    return f"Plug-in bridge: {status.host}:{status.port}, {clients}"
