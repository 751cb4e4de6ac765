"""The bridge token: a random 256-bit secret in a 0600 file that plug-ins read.

:func:`ensure_token` reads it (creating it atomically on first use, replacing a file whose
content is not 64 hex digits), and :class:`TokenGuard` proves the token to clients and checks
their proofs (the challenge-response of :mod:`plugin_bridge.auth`; the token never crosses
the wire): in constant time, with the file's permissions re-checked after a failure and the
failure log rate-limited (a brute-force client cannot flood the log).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import tempfile
import threading
import time
from pathlib import Path

from plugin_bridge import auth
from plugin_bridge.config import legacy_token_path, token_path

from .privacy import restrict_to_owner

log = logging.getLogger(__name__)

TOKEN_BYTES = 32
TOKEN_FORMAT = re.compile(r"[0-9a-fA-F]{64}")
#: at most one authentication-failure log line per this many seconds (plus the first one)
FAILURE_LOG_INTERVAL = 60.0


def ensure_token(path: Path | None = None) -> str:
    """Read the bridge token, creating it (random 256 bits, owner-only, atomically) if absent
    or malformed (anything but 64 hex digits). With the default path, a token at the old
    Windows location (roaming %APPDATA%) is moved to the new one (local %LOCALAPPDATA%)."""
    path = Path(path) if path is not None else token_path()
    existing = read_existing_token(path)
    if existing:
        return existing
    legacy = legacy_token_path() if path == token_path() else None
    moved = read_existing_token(legacy) if legacy is not None else None
    token = moved or secrets.token_hex(TOKEN_BYTES)
    write_private(path, token + "\n", install=_install_token_file)
    if moved:
        _remove_legacy(legacy)
    else:
        log.info("created a new bridge token in %s", path)
    return read_existing_token(path) or token


def write_private(path: Path, text: str, install=None) -> None:
    """Write ``text`` to ``path`` owner-only (0600 / owner-only ACL) via a temporary file in
    the same folder; ``install(tmp, path)`` puts it in place (default os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        restrict_to_owner(tmp)
        (install or _replace)(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _replace(tmp: str, path: Path) -> None:
    os.replace(tmp, path)


def _remove_legacy(legacy: Path) -> None:
    """The token was copied from the pre-protocol-2 location (Windows: roaming %APPDATA%):
    remove it there (and its folder, if empty)."""
    try:
        legacy.unlink()
        legacy.parent.rmdir()
    except OSError:
        pass
    log.info("moved the bridge token from %s (roaming) to %s", legacy, token_path())


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
    """Set mode 0600 if group/others can access the file. True if it had to. (On Windows
    the ACL is set when the file is written, see :func:`write_private`.)"""
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

    @property
    def token(self) -> str | None:
        """The token (after :meth:`load`); for showing the pairing info, never sent."""
        return self._token

    def load(self) -> None:
        if self._token is None:
            self._token = ensure_token(self.path)

    def prove(self, client_nonce: str, server_nonce: str, binding: str = "") -> str:
        """The server's proof that it knows the token (see plugin_bridge.auth)."""
        return auth.proof(self._token or "", auth.SERVER, client_nonce, server_nonce, binding)

    def verify(
        self, candidate: object, client_nonce: str, server_nonce: str, binding: str, peer: str
    ) -> bool:
        """True if ``candidate`` is the client's proof for these nonces (constant-time). A
        failure re-checks the file's permissions and is logged at most once per
        FAILURE_LOG_INTERVAL."""
        token = self._token or ""
        if token and auth.verify(
            candidate, token, auth.CLIENT, client_nonce, server_nonce, binding
        ):
            return True
        self.failed(peer)
        return False

    def failed(self, peer: str) -> None:
        """Count (and rate-limit the log of) one failed authentication."""
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
