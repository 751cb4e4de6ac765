"""Owner-only files (the bridge token, the TLS key) on every OS.

POSIX: mode 0600. Windows: ``chmod`` only toggles the read-only flag, so the file's ACL is
replaced with one entry granting the current user full control (``icacls PATH
/inheritance:r /grant:r DOMAIN\\user:F``), which also drops the Users/Everyone entries a file
inherits from its folder. The platform is a parameter so both branches are tested on any OS.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)


def windows_account(environ: Mapping[str, str] | None = None) -> str | None:
    """``DOMAIN\\user`` of the current Windows user (from the environment), or None."""
    environ = os.environ if environ is None else environ
    user = environ.get("USERNAME", "").strip()
    if not user:
        return None
    domain = environ.get("USERDOMAIN", "").strip()
    return f"{domain}\\{user}" if domain else user


def icacls_command(path: Path | str, account: str) -> list[str]:
    """The icacls call that leaves ``account`` as the only one with access to ``path``."""
    return ["icacls", str(path), "/inheritance:r", "/grant:r", f"{account}:F"]


def restrict_to_owner(
    path: Path | str,
    platform: str | None = None,
    environ: Mapping[str, str] | None = None,
    run: Callable[..., subprocess.CompletedProcess] | None = None,
) -> bool:
    """Make ``path`` readable and writable by its owner only. True if that worked (a failure
    is logged, never raised: the file is still usable)."""
    platform = sys.platform if platform is None else platform
    if not platform.startswith("win"):
        try:
            os.chmod(path, 0o600)
            return True
        except OSError as exc:
            log.warning("cannot make %s private (mode 0600): %s", path, exc)
            return False
    account = windows_account(environ)
    if account is None:
        log.warning("cannot make %s private: %%USERNAME%% is not set", path)
        return False
    try:
        done = (run or subprocess.run)(
            icacls_command(path, account), capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("cannot make %s private (icacls: %s)", path, exc)
        return False
    if done.returncode != 0:
        detail = (done.stderr or done.stdout or "").strip().splitlines()
        log.warning("cannot make %s private (icacls: %s)", path, detail[0] if detail else "")
        return False
    return True
