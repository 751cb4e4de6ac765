"""The dialog for an unexpected error: the one-line message, which log has the details, and
a "Show Details..." button with the end of that log (the traceback)."""

from __future__ import annotations

from PyQt6.QtWidgets import QMessageBox

from cds_desktop import logs


def show(window, message: str) -> QMessageBox:
    """A non-modal message box (one per window, reused) for ``message``."""
    box = getattr(window, "error_dialog", None)
    if box is None:
        box = QMessageBox(window)
        box.setObjectName("error-dialog")
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Something went wrong")
        box.setStandardButtons(QMessageBox.StandardButton.Close)
        window.error_dialog = box
    path = logs.log_file()
    box.setText(message)
    box.setInformativeText(
        "The app keeps working. When you report this, include the log file named above."
        if path
        else "The app keeps working. The details were printed in the terminal it runs in."
    )
    box.setDetailedText(logs.tail(path) or "(no log file: the details are in the terminal)")
    box.show()
    return box
