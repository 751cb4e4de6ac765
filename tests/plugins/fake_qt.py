"""A stand-in for the few PyQt5 classes the Krita plug-in's panel and docker use, for
interpreters that have no PyQt (pyenv's, in test_host_pythons.py). Widgets keep their state
(text, value, enabled) so a script can fill the panel and press Edit; ``QTimer`` does not
tick by itself: the caller fires ``timer.timeout.emit()`` while ``timer.isActive()``.

The real PyQt behaviour of the same panel is checked by test_krita_panel.py (PyQt6) and
inside Krita by test_krita_real.py (PyQt5). Runs on Python 3.8+.
"""

from __future__ import annotations

import sys
import types

QT_VERSION_STR = "5.15.0"


class BoundSignal:
    def __init__(self) -> None:
        self._slots: list = []

    def connect(self, slot) -> None:
        self._slots.append(slot)

    def emit(self, *args) -> None:
        for slot in list(self._slots):
            slot(*args)


class pyqtSignal:  # noqa: N801 - PyQt's name
    """A class attribute giving each instance its own BoundSignal."""

    def __init__(self, *types_) -> None:
        self.types = types_
        self.name = ""

    def __set_name__(self, owner, name) -> None:
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        key = "_signal_" + self.name
        if key not in obj.__dict__:
            obj.__dict__[key] = BoundSignal()
        return obj.__dict__[key]


class QObject:
    def __init__(self, parent=None) -> None:
        self._parent = parent


class QTimer(QObject):
    timeout = pyqtSignal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.interval, self._active = 0, False

    def setInterval(self, ms: int) -> None:
        self.interval = ms

    def start(self, ms=None) -> None:
        self._active = True

    def stop(self) -> None:
        self._active = False

    def isActive(self) -> bool:
        return self._active


class QWidget(QObject):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._enabled, self._title, self._layout = True, "", None

    def setEnabled(self, enabled: bool) -> None:
        self._enabled = bool(enabled)

    def isEnabled(self) -> bool:
        return self._enabled

    def setWindowTitle(self, title: str) -> None:
        self._title = title

    def windowTitle(self) -> str:
        return self._title


class QDockWidget(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._widget = None

    def setWidget(self, widget) -> None:
        self._widget = widget

    def widget(self):
        return self._widget


class QLineEdit(QWidget):
    class EchoMode:  # PyQt6 spelling
        Normal, Password = 0, 2

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._text, self.placeholder = "", ""
        self.echo_mode = QLineEdit.EchoMode.Normal

    def setPlaceholderText(self, text: str) -> None:
        self.placeholder = text

    def setEchoMode(self, mode: int) -> None:
        self.echo_mode = mode

    def setText(self, text: str) -> None:
        self._text = text

    def text(self) -> str:
        return self._text


class QLabel(QLineEdit):
    def __init__(self, text: str = "", parent=None) -> None:
        super().__init__(parent)
        self._text = text

    def setWordWrap(self, on: bool) -> None:
        pass


class QComboBox(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.items: list = []
        self.index = -1

    def addItem(self, text: str, data=None) -> None:
        self.items.append((text, data))
        if self.index < 0:
            self.index = 0

    def setCurrentIndex(self, index: int) -> None:
        self.index = index

    def currentData(self):
        return self.items[self.index][1] if self.index >= 0 else None


class QSpinBox(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.minimum, self.maximum, self._value = 0, 99, 0

    def setRange(self, low: int, high: int) -> None:
        self.minimum, self.maximum = low, high
        self.setValue(self._value)

    def setValue(self, value: int) -> None:
        self._value = max(self.minimum, min(self.maximum, int(value)))

    def value(self) -> int:
        return self._value


class QProgressBar(QSpinBox):
    pass


class QPushButton(QWidget):
    clicked = pyqtSignal()

    def __init__(self, text: str = "", parent=None) -> None:
        super().__init__(parent)
        self._text = text

    def click(self) -> None:
        if self._enabled:
            self.clicked.emit()


class _Layout:
    def __init__(self, parent=None) -> None:
        self.items: list = []

    def addRow(self, label, widget) -> None:
        self.items.append((label, widget))

    def addWidget(self, widget) -> None:
        self.items.append(widget)

    def addLayout(self, layout) -> None:
        self.items.append(layout)

    def addStretch(self, stretch: int = 0) -> None:
        pass


class QFormLayout(_Layout):
    pass


class QHBoxLayout(_Layout):
    pass


class QVBoxLayout(_Layout):
    pass


class QMessageBox:
    shown: list = []

    @classmethod
    def warning(cls, parent, title, text) -> None:
        cls.shown.append(("warning", title, text))

    @classmethod
    def information(cls, parent, title, text) -> None:
        cls.shown.append(("information", title, text))


def install() -> None:
    """Put ``PyQt5``, ``PyQt5.QtCore``, ``PyQt5.QtGui`` and ``PyQt5.QtWidgets`` stand-ins
    into sys.modules (where the plug-in's qt.py finds the binding Krita loaded)."""
    this = sys.modules[__name__]
    package = types.ModuleType("PyQt5")
    package.__path__ = []
    core = types.ModuleType("PyQt5.QtCore")
    for name in ("QT_VERSION_STR", "pyqtSignal", "QObject", "QTimer"):
        setattr(core, name, getattr(this, name))
    gui = types.ModuleType("PyQt5.QtGui")
    widgets = types.ModuleType("PyQt5.QtWidgets")
    for name in (
        "QWidget QDockWidget QLineEdit QLabel QComboBox QSpinBox QProgressBar QPushButton "
        "QFormLayout QHBoxLayout QVBoxLayout QMessageBox"
    ).split():
        setattr(widgets, name, getattr(this, name))
    package.QtCore, package.QtGui, package.QtWidgets = core, gui, widgets
    sys.modules.update(
        {"PyQt5": package, "PyQt5.QtCore": core, "PyQt5.QtGui": gui, "PyQt5.QtWidgets": widgets}
    )
