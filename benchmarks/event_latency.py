"""Event-loop latency of the desktop app while an edit runs on the JobQueue worker thread.

A 5 ms QTimer runs in the GUI thread; its lateness (actual interval - 5 ms) is recorded while
the window is idle and while an edit runs (tiny-random, and shapes-demo when it is present).
Target: p99 lateness < 50 ms while editing.

    python benchmarks/event_latency.py                      # print the table
    python benchmarks/event_latency.py --append docs/performance.md
    python benchmarks/event_latency.py --threads 1          # torch.set_num_threads(1) first
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PyQt6.QtCore import QElapsedTimer, QEventLoop, QSettings, Qt, QTimer  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

from cds_desktop.app import paint_demo_mask  # noqa: E402
from cds_desktop.app.main_window import MainWindow  # noqa: E402
from cds_desktop.app.settings import Preferences, auto_cpu_threads  # noqa: E402
from cds_desktop.engine.jobs import EventKind  # noqa: E402
from cds_desktop.engine.resources import resource_path  # noqa: E402
from cds_desktop.fileio import write_bytes_atomic  # noqa: E402

INTERVAL_MS = 5
HEADING = "## App responsiveness"


class LatencyProbe:
    """Records how late each tick of a 5 ms timer fires (ms)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.recording = False
        self._clock = QElapsedTimer()
        self._last = 0
        self._timer = QTimer()
        self._timer.setInterval(INTERVAL_MS)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._clock.start()
        self._last = self._clock.nsecsElapsed()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = self._clock.nsecsElapsed()
        if self.recording:
            self.samples.append(max(0.0, (now - self._last) / 1e6 - INTERVAL_MS))
        self._last = now

    def take(self) -> np.ndarray:
        out, self.samples = np.array(self.samples), []
        return out


def run_until(app: QApplication, done, timeout: float) -> None:
    """Run the real event loop (as the app does) until done() or the timeout."""
    loop = QEventLoop()
    end = time.monotonic() + timeout
    check = QTimer()
    check.setInterval(20)
    check.timeout.connect(lambda: (done() or time.monotonic() > end) and loop.quit())
    check.start()
    loop.exec()
    check.stop()


def sample_image() -> Path:
    path = resource_path("samples", "red_circle.png")
    if path.is_file():
        return path
    from PIL import Image, ImageDraw

    tmp = Path(tempfile.mkdtemp()) / "red_circle.png"
    im = Image.new("RGB", (256, 256), (240, 240, 240))
    ImageDraw.Draw(im).ellipse((64, 64, 192, 192), fill=(220, 30, 30))
    im.save(tmp)
    return tmp


def measure(app, window, probe, model: str, steps: int, size: int) -> dict:
    window.prompt.set_model(model)
    window.prompt.set_values(
        {
            "source": "a red circle",
            "targets": "a blue circle",
            "steps": steps,
            "working_size": str(size),
            "seed_locked": True,
        }
    )
    finished, started = [], []
    window.worker.started.connect(lambda *a: started.append(time.perf_counter()))
    window.worker.finished.connect(lambda update, record: finished.append(update))
    window.editor.ask_whole_layer = lambda layer: True  # no mask: the whole layer, no question
    window.start_edit()
    run_until(app, lambda: bool(started) or bool(finished), 600)  # model loading: not measured
    probe.take()
    probe.recording = True
    t0 = time.perf_counter()
    run_until(app, lambda: bool(finished), 1800)
    elapsed = time.perf_counter() - t0
    probe.recording = False
    lateness = probe.take()
    update = finished[0] if finished else None
    if update is None or update.kind is not EventKind.DONE:
        raise SystemExit(f"edit on {model} did not finish: {update and update.error}")
    return stats(f"edit, {model}, {steps} steps @ {size}px", lateness, steps / elapsed)


def stats(what: str, lateness: np.ndarray, rate: float | None = None) -> dict:
    return {
        "what": what,
        "ticks": len(lateness),
        "p50": float(np.percentile(lateness, 50)) if len(lateness) else float("nan"),
        "p99": float(np.percentile(lateness, 99)) if len(lateness) else float("nan"),
        "max": float(lateness.max()) if len(lateness) else float("nan"),
        "rate": rate,
    }


def table(rows: list[dict], threads: int, nice: int) -> str:
    command = " ".join(["python benchmarks/event_latency.py", *sys.argv[1:]])
    cpu = f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()})"
    lines = [
        f"Machine: {cpu}, {platform.system()}, Python {platform.python_version()}, "
        f"Qt offscreen, torch threads: {threads}, worker nice +{nice}, "
        f"load average {os.getloadavg()[0]:.1f}. `{command}`",
        "",
        "| while | 5 ms timer ticks | lateness p50 (ms) | p99 (ms) | max (ms) | edit steps/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        rate = f"{r['rate']:.1f}" if r["rate"] else "-"
        lines.append(
            f"| {r['what']} | {r['ticks']} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | "
            f"{rate} |"
        )
    return "\n".join(lines) + "\n"


def append(path: Path, text: str) -> None:
    old = path.read_text(encoding="utf-8") if path.is_file() else "# Performance\n"
    if HEADING not in old:
        old = old.rstrip("\n") + f"\n\n{HEADING}\n\n"
        old += (
            "Event-loop lateness of a 5 ms QTimer in the GUI thread while an edit runs on the\n"
            "JobQueue worker thread (target: p99 < 50 ms).\n"
        )
    new = old.rstrip("\n") + f"\n\n{time.strftime('%Y-%m-%d')}: " + text
    write_bytes_atomic(path, new.encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--size", type=int, default=64, help="working size (px)")
    ap.add_argument(
        "--threads",
        type=int,
        default=-1,
        help="torch CPU threads: -1 = torch's default, 0 = the app's auto (cores - 1), N",
    )
    ap.add_argument(
        "--nice", type=int, default=None, help="worker thread nice increment (default: the app's)"
    )
    ap.add_argument("--models", default="tiny-random,shapes-demo")
    ap.add_argument("--append", type=Path, help="append the table to this markdown file")
    args = ap.parse_args(argv)
    import torch

    if args.threads >= 0:  # what the app sets through OMP_NUM_THREADS at start
        torch.set_num_threads(args.threads or auto_cpu_threads())
    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        prefs = Preferences(QSettings(str(Path(tmp) / "p.ini"), QSettings.Format.IniFormat))
        window = MainWindow(prefs, model="tiny-random", persist=False)
        if args.nice is not None:
            window.worker.nice = args.nice
        window.show()
        window.open_path(sample_image())
        paint_demo_mask(window, sample_image())
        probe = LatencyProbe()
        probe.start()
        run_until(app, lambda: False, 0.5)
        probe.recording = True
        run_until(app, lambda: False, 2.0)
        probe.recording = False
        rows = [stats("idle", probe.take())]
        for model in args.models.split(","):
            if model == "shapes-demo" and not resource_path("models", model).is_dir():
                print("shapes-demo is not present; skipped")
                continue
            rows.append(measure(app, window, probe, model, args.steps, args.size))
        probe.stop()
        window.state.undo.setClean()
        window.close()
        window.shutdown()
    text = table(rows, torch.get_num_threads(), window.worker.nice)
    print(text)
    if args.append:
        append(args.append, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
