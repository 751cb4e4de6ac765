"""`cds-desktop --serve`: the bridge server without the app, until Ctrl+C or SIGTERM.

SIGINT/SIGTERM are handled from the first moment (also while the model loads) and at any
later one: the server tells every client with a running or queued job ``CANCELLED``, closes
the connections and exits 0. A step that is still running after a short wait (a real model
on a CPU can take minutes per step) is not waited for: the process ends without
finalising the interpreter, so native threads that are still computing cannot abort it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from cds_desktop.bridge import BridgeServer, BridgeServerError, check_host
from cds_desktop.bridge.server import DEFAULT_HOST, DEFAULT_PORT
from cds_desktop.engine import EditError
from cds_desktop.engine import jobs as J
from cds_desktop.engine import models as M
from cds_desktop.engine.specs import DEFAULT_VAE_BACKEND
from cds_desktop.logs import setup_logging
from cds_desktop.options import add_model_options, model_kwargs

log = logging.getLogger(__name__)

#: how long a stopping server waits for the current step before exiting without it
STEP_GRACE_S = 2.0
STOP_TIMEOUT_S = 3.0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="cds-desktop --serve",
        description="Headless bridge server for the Krita and GIMP plug-ins.",
    )
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    ap.add_argument("--host", default=DEFAULT_HOST, help="default 127.0.0.1 (this computer)")
    ap.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --host (unencrypted!)"
    )
    add_model_options(ap)
    ap.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return ap


class _StopSignal:
    """SIGINT/SIGTERM set an event instead of raising, so no moment is unsafe; a second
    signal while stopping is only logged. The previous handlers come back on ``restore``."""

    SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM") if hasattr(signal, n))

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.event.is_set():
            log.info("already stopping (%s)", signal.Signals(signum).name)
            return
        log.info("stopping (%s) ...", signal.Signals(signum).name)
        self.event.set()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def serve_main(argv: list[str] | None = None) -> int:
    """`cds-desktop --serve ...`: run the bridge headless until Ctrl+C. Returns an exit code."""
    argv = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--serve"]
    args = _parser().parse_args(argv)
    setup_logging(args.log_level, timestamps=True)
    if not 0 <= args.port <= 65535:
        return _fail(f"--port {args.port}: expected 0..65535")
    stop = _StopSignal()
    try:
        return _serve(args, stop)
    finally:
        stop.restore()


def _serve(args, stop: _StopSignal) -> int:
    try:
        check_host(args.host, args.allow_remote)
        log.info("loading model %s on %s ...", M.describe_spec(args.model), args.device)
        model = _until_stopped(lambda: _load_model(args), stop)
        if model is None:
            log.info("interrupted while loading the model; exiting")
            _exit_now(0)  # the loading thread may be inside native code: do not wait for it
        job_queue = J.JobQueue(loader=_preloaded_loader(model, args))
        server = BridgeServer(
            job_queue, args.host, args.port, args.model, None, args.allow_remote,
            device=args.device, dtype=args.dtype, vae_backend=args.vae,
        )  # fmt: skip
        try:
            server.start()
        except BaseException:
            job_queue.shutdown()
            raise
    except (BridgeServerError, EditError, OSError) as exc:
        return _fail(str(exc))
    log.info("token file: %s (plug-ins read it; keep it private)", server.token_file)
    log.info("ready: model %s, port %d; press Ctrl+C to stop", model.label, server.port)
    while server.running and not stop.event.wait(0.5):
        pass
    server.stop(timeout=STOP_TIMEOUT_S)
    job_queue.shutdown(timeout=STEP_GRACE_S)
    if job_queue.current is not None:
        log.info("the current step is still running; exiting without waiting for it")
        _exit_now(0)
    return 0


def _until_stopped(work: Callable[[], Any], stop: _StopSignal) -> Any:
    """``work()`` on a helper thread; its result, or None if a stop signal came first.
    Its exception is re-raised here."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=run, name="cds-model-load", daemon=True)
    thread.start()
    while thread.is_alive():
        if stop.event.wait(0.1):
            return None
    if "error" in box:
        raise box["error"]
    return box["value"]


def _exit_now(code: int) -> None:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code)


def _load_model(args):
    try:
        return M.load_model(args.model, **model_kwargs(args))
    except EditError:
        raise
    except Exception as exc:  # noqa: BLE001 - one line for the user, details in the log
        log.debug("model load failed", exc_info=True)
        first = (str(exc).strip().splitlines() or [""])[0]
        raise BridgeServerError(
            f"cannot load model {args.model!r}: {type(exc).__name__}: {first} "
            "(--log-level DEBUG shows details)"
        ) from None


def _preloaded_loader(model, args):
    def loader(spec, device="auto", dtype="auto", vae_backend=DEFAULT_VAE_BACKEND):
        if (spec, device, dtype, vae_backend) == (args.model, args.device, args.dtype, args.vae):
            return model
        return M.load_model(spec, device=device, dtype=dtype, vae_backend=vae_backend)

    return loader


def _fail(message: str) -> int:
    sys.stderr.write(f"cds-desktop --serve: error: {message}\n")
    return 2
