"""cds_desktop.logs: the console and logging set-up every entry point shares."""

from __future__ import annotations

import io
import logging
import sys

from cds_desktop import logs


def test_a_windowed_app_without_stdout_or_stderr_survives_error_messages(monkeypatch):
    """A windowed Windows/macOS bundle has sys.stdout = sys.stderr = None; an error message
    (here: --serve with a bad port) must not crash the entry point."""
    from cds_desktop.__main__ import main

    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stderr", None)
    assert main(["--serve", "--port", "99999"]) == 2
    assert sys.stderr is not None and sys.stdout is not None
    logging.getLogger("cds_desktop.test").error("a log record with nowhere to go")


def test_log_records_are_dropped_when_there_is_no_stderr(monkeypatch):
    handler = logs._StderrHandler()
    monkeypatch.setattr(sys, "stderr", None)
    handler.emit(logging.LogRecord("x", logging.ERROR, __file__, 1, "message", None, None))


def test_redirected_output_becomes_utf8_and_a_console_escapes(monkeypatch):
    redirected = io.TextIOWrapper(io.BytesIO(), encoding="cp1252")
    monkeypatch.setattr(sys, "stdout", redirected)
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    logs.prepare_console()
    print("ein Hund → 一只狗")
    print("一只狗", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    assert sys.stdout.buffer.getvalue().decode("utf-8") == "ein Hund → 一只狗\n"
    assert sys.stderr.buffer.getvalue() == b"\\u4e00\\u53ea\\u72d7\n"


def test_setup_logging_keeps_one_handler_and_takes_level_names():
    root = logging.getLogger()
    before = root.level
    try:
        logs.setup_logging("INFO", timestamps=True)
        logs.setup_logging(logging.WARNING)
        handlers = [h for h in root.handlers if isinstance(h, logs._StderrHandler)]
        assert len(handlers) == 1
        assert root.level <= logging.INFO
        assert logging.getLogger("transformers").level == logging.ERROR
    finally:
        root.setLevel(before)
        for h in [h for h in root.handlers if isinstance(h, logs._StderrHandler)]:
            root.removeHandler(h)
