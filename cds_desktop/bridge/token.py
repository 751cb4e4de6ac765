"""The bridge token: a random 256-bit secret in a 0600 file that plug-ins read.

:func:`ensure_token` reads it (creating it atomically on first use, replacing a file whose
content is not 64 hex digits), and :class:`TokenGuard` checks the token a client sends in its
hello: in constant time, with the file's permissions re-checked after a failure and the
failure log rate-limited (a brute-force client cannot flood the log).
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from pathlib import Path

from plugin_bridge.client import token_path

log = logging.getLogger(__name__)

TOKEN_BYTES = 32
TOKEN_FORMAT = re.compile(r"[0-9a-fA-F]{64}")
#: at most one authentication-failure log line per this many seconds (plus the first one)
FAILURE_LOG_INTERVAL = 60.0


def ensure_token(path: Path | None = None) -> str:
    """Read the bridge token, creating it (random 256 bits, mode 0600, atomically) if absent
    or malformed (anything but 64 hex digits)."""
    path = Path(path) if path is not None else token_path()
    existing = read_existing_token(path)
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_hex(TOKEN_BYTES)
    fd, tmp = tempfile.mkstemp(prefix=".bridge-token.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(token + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        _install_token_file(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("created a new bridge token in %s", path)
    return read_existing_token(path) or token


def _install_token_file(tmp: str, path: Path) -> None:
    """Link ``tmp`` to ``path`` without clobbering a token another process made meanwhile;
    replace only an empty/broken one."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        if not read_existing_token(path):
            os.replace(tmp, path)
    except OSError:  # no hard links (e.g. FAT): atomic replace instead
        os.replace(tmp, path)


def read_existing_token(path: Path) -> str | None:
    """The token in ``path`` if it is 64 hex digits (tightening a too-open mode), else None."""
    try:
        token = path.read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    if not TOKEN_FORMAT.fullmatch(token):
        if token:
            log.warning("bridge token %s is not 64 hex digits; making a new one", path)
        return None
    tighten_permissions(path)
    return token


def tighten_permissions(path: Path) -> bool:
    """Set mode 0600 if group/others can access the file. True if it had to."""
    if os.name != "posix":
        return False
    try:
        if not path.stat().st_mode & 0o077:
            return False
        log.warning("bridge token %s was readable by others; setting mode 0600", path)
        os.chmod(path, 0o600)
    except OSError as exc:
        log.warning("cannot check the permissions of the bridge token %s: %s", path, exc)
    return True


class TokenGuard:
    """Checks client tokens against the server's. Thread-safe.

    ``token`` given: use it (tests, the self-test); otherwise :meth:`load` reads or creates the
    token file at ``path``.
    """

    def __init__(self, token: str | None, path: Path | None) -> None:
        self.path = None if token is not None else (path or token_path())
        self._token = token
        self._lock = threading.Lock()
        self._failures = 0  # failures not logged yet
        self._last_log = float("-inf")

    def load(self) -> None:
        if self._token is None:
            self._token = ensure_token(self.path)

    def check(self, candidate: object, peer: str) -> bool:
        """True if ``candidate`` is the token (constant-time). A failure re-checks the file's
        permissions and is logged at most once per FAILURE_LOG_INTERVAL."""
        expected = (self._token or "").encode("ascii")
        if isinstance(candidate, str):
            given = candidate.encode("utf-8", "surrogatepass")
            if expected and hmac.compare_digest(given, expected):
                return True
        self._failed(peer)
        return False

    def _failed(self, peer: str) -> None:
        if self.path is not None:
            tighten_permissions(self.path)
        now = time.monotonic()
        with self._lock:
            self._failures += 1
            if now - self._last_log < FAILURE_LOG_INTERVAL:
                return
            count, self._failures, self._last_log = self._failures, 0, now
        if count == 1:
            log.warning("%s: authentication failed (wrong or missing token)", peer)
        else:
            log.warning(
                "%d authentication failures in the last %.0f s (latest from %s)",
                count,
                FAILURE_LOG_INTERVAL,
                peer,
            )
