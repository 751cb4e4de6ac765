"""The thread guard really detects what it must (so a leaking test would fail)."""

from __future__ import annotations

import threading

from PyQt6.QtCore import QThread

from cds_desktop.engine.jobs import JobQueue


def test_detects_a_running_job_queue_worker(find_leaks):
    before = set(threading.enumerate())
    queue = JobQueue(loader=lambda *a, **k: None)
    queue._ensure_worker()  # start the worker thread without a job
    try:
        assert any("JobQueue worker" in leak for leak in find_leaks(before))
    finally:
        queue.shutdown(wait=True)
    assert find_leaks(before) == []


def test_detects_non_daemon_threads_and_qthreads(find_leaks, qtbot):
    before = set(threading.enumerate())
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="left-behind")
    qthread = QThread()
    thread.start()
    qthread.start()
    try:
        leaks = find_leaks(before)
        assert "non-daemon thread 'left-behind'" in leaks
        assert "QThread QThread" in leaks
    finally:
        stop.set()
        thread.join()
        qthread.quit()
        qthread.wait()
    assert find_leaks(before) == []


def test_the_window_stops_its_worker_on_close(make_window, find_leaks, circle_png):
    before = set(threading.enumerate())  # workers of other suites' session-wide queues included
    window = make_window()
    window.open_path(circle_png)
    window.worker.queue._ensure_worker()
    assert find_leaks(before)
    window.close()
    assert find_leaks(before) == []
