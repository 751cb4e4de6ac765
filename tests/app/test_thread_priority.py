"""The engine's worker thread runs at a lower CPU priority on Linux, Windows and macOS.

Windows and macOS cannot run here: their branches are exercised with the platform faked and
stand-ins for kernel32 / libSystem that record the calls.
"""

from __future__ import annotations

import os
import sys
import threading

import pytest

from cds_desktop.app import worker


def test_each_platform_gets_its_own_way_of_lowering(monkeypatch):
    calls = []
    for name in ("_lower_linux", "_lower_windows", "_lower_macos"):
        monkeypatch.setattr(worker, name, lambda inc, name=name: calls.append((name, inc)))
    assert worker.lower_thread_priority(10, platform="linux")
    assert worker.lower_thread_priority(10, platform="win32")
    assert worker.lower_thread_priority(5, platform="darwin")
    assert not worker.lower_thread_priority(10, platform="emscripten")
    assert not worker.lower_thread_priority(0, platform="linux")
    assert calls == [("_lower_linux", 10), ("_lower_windows", 10), ("_lower_macos", 5)]


class FakeKernel32:
    def __init__(self, ok=True):
        self.ok, self.calls = ok, []

    def GetCurrentThread(self):  # noqa: N802 - the Win32 name
        return -2  # the pseudo-handle Windows returns

    def SetThreadPriority(self, handle, level):  # noqa: N802
        self.calls.append((handle, level))
        return 1 if self.ok else 0


def test_windows_lowers_the_current_thread():
    k32 = FakeKernel32()
    worker._lower_windows(worker.WORKER_NICE, kernel32=k32)
    worker._lower_windows(3, kernel32=k32)
    assert k32.calls == [
        (-2, worker.THREAD_PRIORITY_LOWEST),
        (-2, worker.THREAD_PRIORITY_BELOW_NORMAL),
    ]
    with pytest.raises(OSError):
        worker._lower_windows(10, kernel32=FakeKernel32(ok=False))


def test_macos_uses_a_per_thread_qos_class_not_the_process_priority():
    class FakeLibSystem:
        calls: list = []

        def pthread_set_qos_class_self_np(self, qos, relative):
            self.calls.append((qos, relative))
            return 0

    lib = FakeLibSystem()
    worker._lower_macos(10, libsystem=lib)
    assert lib.calls == [(worker.QOS_CLASS_UTILITY, 0)]


def test_a_failure_is_not_fatal(monkeypatch):
    def refuse(increment):
        raise OSError("not permitted")

    monkeypatch.setattr(worker, "_lower_windows", refuse)
    assert worker.lower_thread_priority(10, platform="win32") is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux per-thread nice")
def test_linux_renices_only_the_calling_thread():
    main_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen = {}

    def body():
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        seen["changed"] = worker.lower_thread_priority(3)
        seen["delta"] = os.getpriority(os.PRIO_PROCESS, tid) - before

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == {"changed": True, "delta": min(3, 19 - main_nice)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_nice
