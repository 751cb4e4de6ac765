"""PyQt5 (Krita 5) or PyQt6 (Krita 6): whichever Krita already loaded.

Krita's ``krita`` module imports its own PyQt before any plug-in, so the one already in
``sys.modules`` is the right one; importing the other would load a second Qt into the
process. Outside Krita (tests) PyQt6 is tried first, then PyQt5.
"""

from __future__ import annotations

import importlib
import sys

_BINDINGS = ("PyQt6", "PyQt5")


def _pick() -> str:
    for name in _BINDINGS:
        if name in sys.modules:
            return name
    for name in _BINDINGS:
        try:
            importlib.import_module(name + ".QtCore")
        except ImportError:
            continue
        return name
    raise ImportError("the CDS plug-in needs PyQt6 or PyQt5 (Krita ships one of them)")


BINDING = _pick()
QtCore = importlib.import_module(BINDING + ".QtCore")
QtGui = importlib.import_module(BINDING + ".QtGui")
QtWidgets = importlib.import_module(BINDING + ".QtWidgets")
QT_MAJOR = int(QtCore.QT_VERSION_STR.split(".")[0])


def exec_loop(obj) -> int:
    """``exec()`` on PyQt6, ``exec_()`` on PyQt5 (dialogs, event loops)."""
    run = getattr(obj, "exec", None) or obj.exec_
    return run()
