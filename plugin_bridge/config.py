"""Where cds-desktop keeps its per-user files (the bridge token, the TLS certificate, the
pinned certificates of remote bridges), and the environment variables that override it.

Standard library only, Python 3.8+: shared by the server and the plug-ins' client, so both
agree on the location.

* ``$CDS_CONFIG_DIR`` (any OS): this folder, used as it is.
* Linux/BSD: ``$XDG_CONFIG_HOME/cds-desktop`` (``~/.config/cds-desktop`` when unset).
* macOS: ``~/Library/Application Support/cds-desktop``.
* Windows: ``%LOCALAPPDATA%\\cds-desktop`` (local, not roaming: the token is never copied to
  a file server with a roaming profile). Versions before protocol 2 used ``%APPDATA%``
  (roaming); :func:`legacy_token_path` names that file so the server can move it once.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import Mapping

APP_NAME = "cds-desktop"
TOKEN_FILE = "bridge-token"
#: any OS: the config folder itself (tests, portable installs, several users' servers)
CONFIG_ENV = "CDS_CONFIG_DIR"
#: the token itself, for hosts that cannot read the token file (e.g. a sandboxed Krita)
TOKEN_ENV = "CDS_BRIDGE_TOKEN"


def _is_windows(platform: str) -> bool:
    return platform.startswith("win")


def config_dir(platform: str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The per-user config folder (``platform``/``environ`` default to this process's; tests
    pass others to check every OS's rule)."""
    platform = sys.platform if platform is None else platform
    environ = os.environ if environ is None else environ
    override = environ.get(CONFIG_ENV, "").strip()
    if override:
        return Path(os.path.expanduser(override))
    if _is_windows(platform):
        base = environ.get("LOCALAPPDATA", "").strip()
        if not base:
            base = os.path.join(_home(environ), "AppData", "Local")
    elif platform == "darwin":
        base = os.path.join(_home(environ), "Library", "Application Support")
    else:
        base = environ.get("XDG_CONFIG_HOME", "").strip() or os.path.join(_home(environ), ".config")
    return Path(base) / APP_NAME


def legacy_config_dir(
    platform: str | None = None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """Where older versions kept the token, if that differs from :func:`config_dir`: on
    Windows the roaming ``%APPDATA%\\cds-desktop``; None elsewhere or with $CDS_CONFIG_DIR."""
    platform = sys.platform if platform is None else platform
    environ = os.environ if environ is None else environ
    if environ.get(CONFIG_ENV, "").strip() or not _is_windows(platform):
        return None
    base = environ.get("APPDATA", "").strip()
    if not base:
        base = os.path.join(_home(environ), "AppData", "Roaming")
    return Path(base) / APP_NAME


def token_path() -> Path:
    """Where the server keeps the shared secret (created on its first run, owner-only)."""
    return config_dir() / TOKEN_FILE


def legacy_token_path() -> Path | None:
    legacy = legacy_config_dir()
    return legacy / TOKEN_FILE if legacy is not None else None


def _home(environ: Mapping[str, str]) -> str:
    for key in ("HOME", "USERPROFILE"):
        value = environ.get(key, "").strip()
        if value:
            return value
    return os.path.expanduser("~")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
