"""App test fixtures: offscreen Qt, temp QSettings, a cached tiny-random model, a thread guard."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any Qt import

import threading
import time
import weakref

import pytest
from PIL import Image, ImageDraw
from PyQt6.QtCore import QCoreApplication, QSettings, QThread, QThreadPool

from cds_desktop.app.settings import APPLICATION, ORGANIZATION, Preferences
from cds_desktop.engine.jobs import JobQueue
from cds_desktop.engine.models import load_model

# ----------------------------------------------------------------------------- thread guard
_qthreads: weakref.WeakSet = weakref.WeakSet()
_qthread_start = QThread.start


def _tracked_start(self, *args):
    _qthreads.add(self)
    return _qthread_start(self, *args)


QThread.start = _tracked_start  # every QThread started from Python is tracked


def leaked_threads(ignore: set[threading.Thread] = frozenset()) -> list[str]:
    """Threads a test must not leave running: non-daemon Python threads, JobQueue workers,
    QThreads started from Python, busy QThreadPool workers."""
    leaks = []
    for t in threading.enumerate():
        if t is threading.main_thread() or t in ignore or not t.is_alive():
            continue
        if not t.daemon:
            leaks.append(f"non-daemon thread {t.name!r}")
        elif t.name.startswith("cds-job-worker"):
            leaks.append(f"JobQueue worker {t.name!r}")
    for qthread in list(_qthreads):
        try:
            running = qthread.isRunning()
        except RuntimeError:  # the C++ object is gone, so is the thread
            continue
        if running:
            leaks.append(f"QThread {type(qthread).__name__}")
    if QThreadPool.globalInstance().activeThreadCount():
        leaks.append("active QThreadPool worker")
    return leaks


@pytest.fixture(autouse=True)
def thread_guard():
    """Fail any test that leaves a QThread, a non-daemon thread or a JobQueue worker running."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0  # threads that are already stopping get a moment
    while (leaks := leaked_threads(before)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if leaks:
        pytest.fail("test left threads running: " + ", ".join(leaks))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Edits in these tests use one CPU thread, as the app does on a 2-core machine (the
    shared test machine is oversubscribed, where 2 OpenMP threads are many times slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- settings
@pytest.fixture(autouse=True)
def temp_settings(tmp_path):
    """All QSettings (INI, user scope) live under this test's tmp dir."""
    folder = tmp_path / "settings"
    folder.mkdir()
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)
    yield folder


@pytest.fixture
def prefs(temp_settings) -> Preferences:
    return Preferences()


# ----------------------------------------------------------------------------- model
_models: dict = {}


def cached_loader(spec, **kwargs):
    """load_model, but tiny-random is built once per session (it is read-only in edits)."""
    if spec != "tiny-random":
        return load_model(spec, **kwargs)
    key = tuple(sorted(kwargs.items()))
    if key not in _models:
        _models[key] = load_model(spec, **kwargs)
    return _models[key]


@pytest.fixture
def make_window(qtbot, prefs):
    """Build MainWindows on tiny-random with a cached model; all are closed at teardown."""
    from cds_desktop.app.main_window import MainWindow

    windows = []

    def make(model: str = "tiny-random", **kwargs):
        queue = kwargs.pop("queue", None) or JobQueue(loader=cached_loader)
        win = MainWindow(prefs, model=model, queue=queue, **kwargs)
        win.ask_unsaved = lambda: "discard"
        # an empty mask asks before editing the whole layer; the dialog's own tests put the
        # real question (win._ask_whole_layer) back
        win.editor.ask_whole_layer = lambda layer: True
        qtbot.addWidget(win)
        win.resize(900, 600)
        win.show()
        windows.append(win)
        return win

    yield make
    for win in windows:
        win.ask_unsaved = lambda: "discard"
        win.close()
        win.shutdown()


@pytest.fixture
def window(make_window):
    return make_window()


# ----------------------------------------------------------------------------- images
@pytest.fixture
def circle_png(tmp_path):
    """A 48x40 RGB PNG: a red disc on grey."""
    im = Image.new("RGB", (48, 40), (200, 200, 200))
    ImageDraw.Draw(im).ellipse((12, 8, 36, 32), fill=(220, 30, 30))
    path = tmp_path / "circle.png"
    im.save(path)
    return path


@pytest.fixture
def fast_values():
    """fast_values(**overrides): prompt-panel values for a quick tiny-random edit."""
    return _fast_values


def _fast_values(**overrides) -> dict:
    values = {
        "source": "a red circle",
        "targets": "a blue circle",
        "mode": "cds",
        "steps": 3,
        "w_cut": "",
        "guidance": 7.5,
        "seed": 0,
        "seed_locked": True,
        "working_size": "32",
    }
    values.update(overrides)
    return values


@pytest.fixture
def find_leaks():
    """The guard's detector, for testing the guard itself."""
    return leaked_threads
