"""The docker's contents: prompts, mode, steps, Edit/Cancel, a progress bar and a status line.

Plain Qt (no ``krita`` import), so it runs in the docker, under kritarunner and in pytest-qt.
Waiting never blocks the GUI thread: connecting and submitting run on a worker thread
(:func:`.session.submit_in_background`), and a QTimer checks on it and then calls :meth:`EditSession.poll`,
which only reads messages that have already arrived.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

from .logic import EditParams, KritaDocument, KritaNode, PluginError
from .qt import QtCore, QtWidgets
from .session import (
    CANCELLED,
    FAILED,
    RUNNING,
    Background,
    EditSession,
    Update,
    make_client,
    pinned_note,
    submit_in_background,
    user_message,
)

log = logging.getLogger(__name__)

POLL_MS = 100
DEFAULT_STEPS = 200
MODES = (("CDS (keeps structure)", "cds"), ("DDS (baseline)", "dds"))

#: Returns the document and the layer to edit, or raises PluginError. (``typing.Callable``:
#: ``collections.abc.Callable`` cannot be subscripted at run time on Python 3.8, Krita 5.0/5.1's.)
TargetProvider = Callable[[], "tuple[KritaDocument, KritaNode]"]


class CdsPanel(QtWidgets.QWidget):
    """Emits ``finished(ok, text)`` when an edit ends (done, failed or cancelled)."""

    finished = QtCore.pyqtSignal(bool, str)

    def __init__(
        self,
        target_provider: TargetProvider,
        client_factory: Callable[[], Any] | None = None,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._target_provider = target_provider
        #: default: a client for the address/fingerprint/token typed in the Bridge fields
        self._client_factory = client_factory or self.make_client
        self._client: Any = None
        self._client_options: tuple = ()
        self.session: EditSession | None = None
        #: Connecting and submitting on a worker thread; None once the timer has its outcome.
        self._submission: Background | None = None
        #: Extra EditSettings fields sent with every edit (e.g. {"seed": 3}).
        self.extra_settings: dict = {}
        #: shown once after the first connection to a remote bridge (its certificate pinned)
        self.last_note = ""
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        self._build()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.source_edit = QtWidgets.QLineEdit(self)
        self.source_edit.setPlaceholderText("what the layer shows now, e.g. a cat")
        self.target_edit = QtWidgets.QLineEdit(self)
        self.target_edit.setPlaceholderText("what it should show, e.g. a dog")
        self.mode_combo = QtWidgets.QComboBox(self)
        for label, mode in MODES:
            self.mode_combo.addItem(label, mode)
        self.steps_spin = QtWidgets.QSpinBox(self)
        self.steps_spin.setRange(1, 2000)
        self.steps_spin.setValue(DEFAULT_STEPS)
        # where the bridge is: empty fields mean this computer / the environment variables
        self.address_edit = QtWidgets.QLineEdit(self)
        self.address_edit.setPlaceholderText("this computer (or HOST:PORT of a remote bridge)")
        self.fingerprint_edit = QtWidgets.QLineEdit(self)
        self.fingerprint_edit.setPlaceholderText("remote only: the SHA-256 the server printed")
        self.token_edit = QtWidgets.QLineEdit(self)
        self.token_edit.setPlaceholderText("only if Krita cannot read the token file")
        self.token_edit.setEchoMode(_password_mode())
        self.edit_button = QtWidgets.QPushButton("Edit", self)
        self.cancel_button = QtWidgets.QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)
        self.progress = QtWidgets.QProgressBar(self)
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.status = QtWidgets.QLabel("select a paint layer (and optionally an area)", self)
        self.status.setWordWrap(True)
        self.edit_button.clicked.connect(self.start_edit)
        self.cancel_button.clicked.connect(self.cancel_edit)
        self._lay_out()

    def _lay_out(self) -> None:
        form = QtWidgets.QFormLayout()
        form.addRow("Source", self.source_edit)
        form.addRow("Target", self.target_edit)
        form.addRow("Mode", self.mode_combo)
        form.addRow("Steps", self.steps_spin)
        form.addRow("Bridge", self.address_edit)
        form.addRow("Fingerprint", self.fingerprint_edit)
        form.addRow("Token", self.token_edit)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.edit_button)
        buttons.addWidget(self.cancel_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch(1)

    # ------------------------------------------------------------------ actions
    def params(self) -> EditParams:
        return EditParams(
            source=self.source_edit.text().strip(),
            target=self.target_edit.text().strip(),
            mode=str(self.mode_combo.currentData()),
            steps=int(self.steps_spin.value()),
            extra_settings=dict(self.extra_settings),
        )

    @property
    def busy(self) -> bool:
        return self.session is not None and self.session.state == RUNNING

    def start_edit(self) -> None:
        if self.busy:
            return
        try:
            doc, node = self._target_provider()
            session = EditSession(doc, node, self.params())
            session.prepare()  # refuse bad layers/prompts before connecting
            options = self.connection_options()
            if self._client is not None and options != self._client_options:
                self._client.close()  # the user pointed the panel at another bridge
                self._client = None
            if self._client is None or not self._client.connected:
                self._client = self._client_factory()
                self._client_options = options
        except Exception as exc:  # every failure becomes a status line
            self._end(False, user_message(exc))
            return
        self.session = session
        self._submission = submit_in_background(session, self._client)
        self._show(Update("connecting to the bridge..."))
        self._set_running(True)
        self._timer.start()

    def cancel_edit(self) -> None:
        if not self.busy:
            return
        if self._submission is not None:  # still connecting: let the worker close it
            self._abandon_submission()
            self.session.state = CANCELLED
            self._end(False, "cancelled")
            return
        try:
            self.session.cancel()
            self._show(Update("cancelling..."))
        except Exception as exc:
            self._end(False, user_message(exc))

    def shutdown(self) -> None:
        """Stop polling and close the connection (the server cancels unfinished jobs)."""
        self._timer.stop()
        self._abandon_submission()
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------------ internals
    def connection_options(self) -> tuple[str, str, str]:
        """(address, fingerprint, token) as typed in the Bridge fields."""
        return (
            self.address_edit.text().strip(),
            self.fingerprint_edit.text().strip(),
            self.token_edit.text().strip(),
        )

    def make_client(self) -> Any:
        address, fingerprint, token = self.connection_options()
        return make_client(address=address, fingerprint=fingerprint, token=token)

    def _abandon_submission(self) -> None:
        """Forget a connect still running on the worker; the worker closes its client."""
        if self._submission is not None:
            self._submission.abandon()
            self._submission, self._client = None, None

    def _take_submission(self) -> Update | None:
        """The submit's Update once the worker is done (None while it runs); a failed
        connect or submit is a finished Update with its one-line message. After the first
        connection to a remote bridge, the update says which certificate is now trusted."""
        if not self._submission.done():
            return None
        submission, self._submission = self._submission, None
        try:
            update = submission.outcome()
        except Exception as exc:
            log.warning("sending the edit failed: %s", exc)
            self.session.state = FAILED
            return Update(user_message(exc), finished=True)
        client = self._client
        note = pinned_note(client) if hasattr(client, "pinned_now") else ""
        if note:
            log.warning("%s", note)
            self.last_note = note
            update = dataclasses.replace(update, text=f"{note}; {update.text}")
        return update

    def _drop_client_if_closed(self) -> None:
        if self._client is not None and not self._client.connected:
            self._client = None

    def _poll(self) -> None:
        if self.session is None:
            self._timer.stop()
            return
        try:
            if self._submission is not None:
                update = self._take_submission()
            else:
                update = self.session.poll()
        except Exception as exc:  # e.g. Krita refused the new layer
            log.exception("polling the bridge failed")
            self.session.state = FAILED
            update = Update(user_message(exc), finished=True)
        if update is None:
            return
        self._show(update)
        if update.finished:
            self._drop_client_if_closed()
            self._end(update.ok, update.text)

    def _show(self, update: Update) -> None:
        if update.fraction is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 100)
            self.progress.setValue(int(round(update.fraction * 100)))
        self.status.setText(update.text)

    def _end(self, ok: bool, text: str) -> None:
        self._timer.stop()
        self._set_running(False)
        self.progress.setRange(0, 100)
        self.progress.setValue(100 if ok else 0)
        self.status.setText(text)
        self.finished.emit(ok, text)

    def _set_running(self, running: bool) -> None:
        self.edit_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)


def _password_mode() -> Any:
    """QLineEdit's password echo mode under PyQt5 (flat enum) and PyQt6 (scoped enum)."""
    flat = getattr(QtWidgets.QLineEdit, "Password", None)
    return flat if flat is not None else QtWidgets.QLineEdit.EchoMode.Password


def no_document_error() -> PluginError:
    return PluginError("no open document: open or create an image first")
