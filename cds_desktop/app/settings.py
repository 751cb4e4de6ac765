"""Preferences and last-used values, persisted with QSettings (INI format).

Everything goes through :class:`Preferences`, so tests can point it at a temp location
(``QSettings.setPath(IniFormat, UserScope, tmp)``) and nothing else touches QSettings.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from PyQt6.QtCore import QByteArray, QSettings

from cds_desktop.engine import specs

log = logging.getLogger(__name__)

ORGANIZATION = "cds-desktop"
APPLICATION = "cds-desktop"
MAX_RECENT = 10
#: "mps": Apple Silicon GPUs (PyTorch's Metal backend).
DEVICES = ("auto", "cpu", "cuda", "mps")
VAE_BACKENDS = specs.VAE_BACKENDS
DEFAULT_MODEL = specs.DEMO_MODEL


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def auto_cpu_threads() -> int:
    """Leave one core to the GUI: max(1, cores - 1)."""
    return max(1, (os.cpu_count() or 2) - 1)


def limit_cpu_threads(threads: int) -> int | None:
    """Cap the engine's CPU threads (0 = auto) through OMP_NUM_THREADS/MKL_NUM_THREADS.

    Must run before the engine (torch) is imported; a value the user already set in the
    environment wins. Returns the number set, or None when nothing was changed. With every
    core busy, the engine's OpenMP threads fight the GUI thread and each other (see
    docs/performance.md, "App responsiveness"), so the app keeps one core free.
    """
    if "torch" in sys.modules or any(os.environ.get(v) for v in THREAD_VARIABLES):
        return None
    n = threads if threads > 0 else auto_cpu_threads()
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(n)
    return n


class Preferences:
    """Typed accessors over one QSettings store."""

    def __init__(self, store: QSettings | None = None) -> None:
        self._s = store or QSettings(
            QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION
        )

    @property
    def store(self) -> QSettings:
        return self._s

    def sync(self) -> None:
        self._s.sync()

    # ------------------------------------------------------------------ model / device
    @property
    def model(self) -> str:
        return str(self._s.value("engine/model", DEFAULT_MODEL) or DEFAULT_MODEL)

    @model.setter
    def model(self, spec: str) -> None:
        self._s.setValue("engine/model", spec)

    @property
    def device(self) -> str:
        return _choice(self._s.value("engine/device", "auto"), DEVICES)

    @device.setter
    def device(self, value: str) -> None:
        self._s.setValue("engine/device", _choice(value, DEVICES))

    @property
    def vae_backend(self) -> str:
        return _choice(self._s.value("engine/vae_backend", specs.DEFAULT_VAE_BACKEND), VAE_BACKENDS)

    @vae_backend.setter
    def vae_backend(self, value: str) -> None:
        self._s.setValue("engine/vae_backend", _choice(value, VAE_BACKENDS))

    @property
    def cpu_threads(self) -> int:
        """torch CPU threads for edits; 0 = auto (cores - 1, leaving one for the GUI)."""
        try:
            return max(0, int(self._s.value("engine/cpu_threads", 0)))
        except (TypeError, ValueError):
            return 0

    @cpu_threads.setter
    def cpu_threads(self, value: int) -> None:
        self._s.setValue("engine/cpu_threads", max(0, int(value)))

    @property
    def custom_models(self) -> list[str]:
        """Repo ids, folders and files the user picked before (newest first)."""
        return self._list("engine/custom_models")

    def add_custom_model(self, spec: str) -> None:
        self._push("engine/custom_models", spec, 8)

    # ------------------------------------------------------------------ files
    @property
    def recent_files(self) -> list[str]:
        return self._list("files/recent")

    def add_recent_file(self, path: str) -> None:
        self._push("files/recent", path, MAX_RECENT)

    def remove_recent_file(self, path: str) -> None:
        self._s.setValue("files/recent", json.dumps([p for p in self.recent_files if p != path]))

    @property
    def last_dir(self) -> str:
        return str(self._s.value("files/last_dir", "") or "")

    @last_dir.setter
    def last_dir(self, value: str) -> None:
        self._s.setValue("files/last_dir", value)

    # ------------------------------------------------------------------ last-used values
    def panel_values(self) -> dict[str, Any]:
        """The prompt panel's last values (a JSON dict; {} when none or unreadable)."""
        return self._json("panel/values", {})

    def set_panel_values(self, values: dict[str, Any]) -> None:
        self._s.setValue("panel/values", json.dumps(values))

    def tool_values(self) -> dict[str, Any]:
        return self._json("tools/values", {})

    def set_tool_values(self, values: dict[str, Any]) -> None:
        self._s.setValue("tools/values", json.dumps(values))

    # ------------------------------------------------------------------ window
    def geometry(self) -> QByteArray | None:
        value = self._s.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def window_state(self) -> QByteArray | None:
        value = self._s.value("window/state")
        return value if isinstance(value, QByteArray) else None

    def set_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self._s.setValue("window/geometry", geometry)
        self._s.setValue("window/state", state)

    @property
    def bridge_enabled(self) -> bool:
        return str(self._s.value("bridge/enabled", "false")).lower() == "true"

    @bridge_enabled.setter
    def bridge_enabled(self, on: bool) -> None:
        self._s.setValue("bridge/enabled", "true" if on else "false")

    @property
    def hint_dismissed(self) -> bool:
        """The first-run hint was dismissed ("Got it")."""
        return str(self._s.value("help/hint_dismissed", "false")).lower() == "true"

    @hint_dismissed.setter
    def hint_dismissed(self, on: bool) -> None:
        self._s.setValue("help/hint_dismissed", "true" if on else "false")

    # ------------------------------------------------------------------ helpers
    def _json(self, key: str, default):
        raw = self._s.value(key, "")
        if not raw:
            return default
        try:
            value = json.loads(str(raw))
        except ValueError:
            log.warning("ignoring unreadable preference %s", key)
            return default
        return value if isinstance(value, type(default)) else default

    def _list(self, key: str) -> list[str]:
        return [str(v) for v in self._json(key, []) if isinstance(v, str) and v]

    def _push(self, key: str, value: str, limit: int) -> None:
        items = [value] + [v for v in self._list(key) if v != value]
        self._s.setValue(key, json.dumps(items[:limit]))


def _choice(value, options: tuple[str, ...]) -> str:
    value = str(value)
    return value if value in options else options[0]
