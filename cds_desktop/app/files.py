"""File handling for the main window: open (dialog, recent files, drops), save, export.

Opening checks the file before the unsaved-changes question, so a file that cannot be read
never costs the open document. Save and Export write on a background thread (the layers
are snapshotted first, so the document stays usable) while a busy indicator shows in the
status bar; files are written to a temp file and renamed, so a failure leaves the old file
and the document as they were. Closing the window waits for a write that is still running.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from PyQt6.QtCore import QCoreApplication, QObject, Qt, pyqtSignal
from PyQt6.QtWidgets import QFileDialog, QLabel, QMenu, QProgressBar

from .documents import (
    OPEN_SUFFIXES,
    ORA_SUFFIX,
    Document,
    DocumentError,
    EditRecord,
    export_png,
    open_document,
    write_ora,
)
from .widgets.history import HistoryEntry

log = logging.getLogger(__name__)

OPEN_FILTER = "Images ({});;OpenRaster (*.ora);;All files (*)".format(
    " ".join(f"*{s}" for s in OPEN_SUFFIXES)
)


class FileActions(QObject):
    """Open/save/export for ``window`` (a MainWindow: state, prefs, history, show_error,
    ask_unsaved, ask_save_path, load_document)."""

    #: a background write ended: kind ("save" | "export"), path, error message or ""
    writeFinished = pyqtSignal(str, str, str)
    busyChanged = pyqtSignal(bool)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self._thread: threading.Thread | None = None
        self._pending: tuple | None = None  # what the running write will do when it ends
        self._changed = False  # the document changed while the write ran
        window.state.undo.indexChanged.connect(self._on_change)  # merged steps emit it too
        self.writeFinished.connect(self._on_written, Qt.ConnectionType.QueuedConnection)
        window.setAcceptDrops(True)  # the window passes drag events to drag_enter / drop
        bar = window.statusBar()
        self.busy_label = QLabel("", window)
        self.busy_bar = QProgressBar(window)
        self.busy_bar.setRange(0, 0)  # a busy indicator: the write has no steps
        self.busy_bar.setFixedWidth(90)
        self.busy_bar.setTextVisible(False)
        for w in (self.busy_label, self.busy_bar):
            w.hide()
            bar.addWidget(w)

    # ------------------------------------------------------------------ open
    def open_dialog(self) -> bool:
        prefs = self.window.prefs
        path, _ = QFileDialog.getOpenFileName(
            self.window, "Open image", prefs.last_dir, OPEN_FILTER
        )
        return self.open_path(path) if path else False

    def open_path(self, path: str | Path) -> bool:
        """Open a file, replacing the current document. The file is read first; only a
        readable one leads to the question about unsaved changes."""
        window = self.window
        try:
            doc = open_document(path)
        except DocumentError as exc:
            window.show_error(str(exc))
            return False
        if not window.confirm_discard():
            return False
        self.load(doc)
        window.prefs.add_recent_file(str(Path(path).resolve()))
        window.prefs.last_dir = str(Path(path).resolve().parent)
        window.statusBar().showMessage(f"opened {Path(path).name}", 5000)
        return True

    def load(self, doc: Document) -> None:
        """Show ``doc``; its History (from an .ora) fills the History panel."""
        self.window.load_document(doc)
        for record in doc.history:
            self.window.history.add(HistoryEntry(**_fields(record)))
        if doc.history:
            self.window.editor.note_history_id(max(record.id for record in doc.history))

    def fill_recent(self, menu: QMenu) -> None:
        menu.clear()
        for path in self.window.prefs.recent_files:
            action = menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_recent(p))
        menu.setEnabled(True)
        if not self.window.prefs.recent_files:
            menu.addAction("(none)").setEnabled(False)

    def open_recent(self, path: str) -> bool:
        if not Path(path).is_file():
            self.window.prefs.remove_recent_file(path)
            self.window.show_error(f"{path} no longer exists")
            return False
        return self.open_path(path)

    # ------------------------------------------------------------------ drag and drop
    def drag_enter(self, event) -> None:
        if dropped_path(event.mimeData()) is not None:
            event.acceptProposedAction()

    def drop(self, event) -> None:
        path = dropped_path(event.mimeData())
        if path is not None:
            event.acceptProposedAction()
            self.open_path(path)

    # ------------------------------------------------------------------ save / export
    @property
    def busy(self) -> bool:
        """A write is running (Save, Save As and Export are disabled meanwhile)."""
        return self._pending is not None

    def save(self, wait: bool = False) -> bool:
        doc = self.window.state.doc
        if doc is None:
            return False
        if doc.path is not None and doc.path.suffix.lower() == ORA_SUFFIX:
            return self.save_to(doc.path, wait)
        return self.save_as(wait=wait)

    def save_as(self, path: str | Path | None = None, wait: bool = False) -> bool:
        if self.window.state.doc is None:
            return False
        if path is None:
            path = self.window.ask_save_path(self.suggest(ORA_SUFFIX), "OpenRaster (*.ora)")
            if not path:
                return False
        path = Path(path)
        if path.suffix.lower() != ORA_SUFFIX:
            path = path.with_name(path.name + ORA_SUFFIX)
        return self.save_to(path, wait)

    def save_to(self, path: Path, wait: bool = False) -> bool:
        """Write the document as .ora at ``path``: in the background (True = started), or
        with ``wait`` before returning (True = written)."""
        state = self.window.state
        snapshot = state.doc.snapshot()
        snapshot.history = self._history_records()
        done = ("save", Path(path), state.doc)
        return self._write(done, lambda: write_ora(snapshot, path), wait)

    def export(self, path: str | Path | None = None, wait: bool = False) -> bool:
        """Write the flattened visible layers as PNG (does not change what Save writes to)."""
        doc = self.window.state.doc
        if doc is None:
            return False
        path = path or self.window.ask_save_path(self.suggest("-edited.png"), "PNG image (*.png)")
        if not path:
            return False
        snapshot = doc.snapshot()
        return self._write(("export", Path(path), doc), lambda: export_png(snapshot, path), wait)

    def suggest(self, suffix: str) -> str:
        doc = self.window.state.doc
        base = doc.path or doc.source_path
        if base is None:
            return str(Path(self.window.prefs.last_dir or ".") / f"untitled{suffix}")
        return str(base.with_name(base.stem + suffix))

    def wait(self) -> None:
        """Block until a running write has finished (and its result was applied)."""
        thread = self._thread
        if thread is not None:
            thread.join()
            QCoreApplication.sendPostedEvents(self)  # delivers writeFinished now

    def _history_records(self) -> list[EditRecord]:
        entries = sorted(self.window.history.entries.values(), key=lambda e: e.id)
        return [EditRecord(**_fields(entry)) for entry in entries]

    def _write(self, done: tuple, write: Callable[[], None], wait: bool) -> bool:
        kind, path = done[0], done[1]
        if self.busy:
            if not wait:
                self.window.statusBar().showMessage(
                    f"still writing {self._pending[1].name}; try again when it is done", 5000
                )
                return False
            self.wait()
        self._pending = done
        self._changed = False
        self.busy_label.setText(f"{'saving' if kind == 'save' else 'exporting'} {path.name}...")
        self.busy_label.show()
        self.busy_bar.show()
        self.busyChanged.emit(True)

        def job() -> str:
            try:
                write()
                return ""
            except DocumentError as exc:
                return str(exc)
            except Exception as exc:  # a bug: the user still gets one line, the log the rest
                log.exception("writing %s failed", path)
                return f"could not write {path.name}: internal error ({type(exc).__name__})"

        if wait:
            return self._finish(kind, str(path), job())
        self._thread = threading.Thread(
            target=lambda: self.writeFinished.emit(kind, str(path), job()),
            name=f"cds-{kind}",
            daemon=False,  # the interpreter waits for a write to finish
        )
        self._thread.start()
        return True

    def _on_change(self, _index: int) -> None:
        if self._pending is not None:
            self._changed = True

    def _on_written(self, kind: str, path: str, error: str) -> None:
        if self._thread is not None:
            self._thread.join()
        self._thread = None
        self._finish(kind, path, error)

    def _finish(self, kind: str, path: str, error: str) -> bool:
        doc = self._pending[2]
        self._pending = None
        self.busy_label.hide()
        self.busy_bar.hide()
        self.busyChanged.emit(False)
        window = self.window
        if window.is_closed:
            return not error
        if error:
            window.show_error(error)
            return False
        if kind == "save" and doc is window.state.doc:
            doc.path = Path(path)
            if not self._changed:
                window.state.mark_saved()
            else:  # changed while it was written: the file holds an earlier state
                window.state.undo.resetClean()
            window.prefs.add_recent_file(str(Path(path).resolve()))
            window.update_title()
        window.statusBar().showMessage(f"{'saved' if kind == 'save' else 'exported'} {path}", 5000)
        return True


def dropped_path(mime) -> str | None:
    for url in mime.urls() if mime.hasUrls() else []:
        if url.isLocalFile() and Path(url.toLocalFile()).suffix.lower() in OPEN_SUFFIXES:
            return url.toLocalFile()
    return None


def _fields(entry) -> dict:
    keys = (
        "id",
        "source_prompt",
        "target_prompt",
        "settings",
        "model",
        "elapsed",
        "layer_uid",
        "thumbnail",
    )
    return {k: getattr(entry, k) for k in keys}
