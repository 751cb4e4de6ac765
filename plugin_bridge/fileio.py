"""Atomic file writes for the bridge client and the plug-ins (standard library, Python 3.8+).

The same behaviour as the app's ``cds_desktop/fileio.py`` (plug-in code runs in the host's
Python and may not import the app): data goes to a temporary file in the target's folder and
replaces the target with one ``os.replace``, so a reader never sees a partial file and a
failure leaves no temporary file behind. A new file gets what ``open(path, "wb")`` gives
(``0o666`` minus the umask, applied by the operating system), an existing one keeps its mode.
``os.replace`` is retried for about 1.5 s on PermissionError (Windows: a viewer, an antivirus
scanner or a sync client holds the target open).
"""

from __future__ import annotations

import os
import secrets
import stat
import time

#: pauses between os.replace attempts that failed with PermissionError (about 1.5 s in all)
REPLACE_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8)

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def replace(src, dst) -> None:
    """``os.replace`` retried on PermissionError (Windows: target held open by a viewer)."""
    for delay in REPLACE_DELAYS:
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            time.sleep(delay)
    os.replace(src, dst)


def write_bytes_atomic(path, data: bytes) -> None:
    """Write ``data`` to ``path`` (str or path-like; its folder must exist) atomically."""
    target = os.fspath(path)
    folder, name = os.path.split(target)
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, _FLAGS, 0o666)  # the OS applies the umask, as for open()
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"cannot create a temporary file next to {target}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            mode = os.stat(target).st_mode
        except OSError:
            mode = None
        if mode is not None and stat.S_ISREG(mode):
            os.chmod(tmp, stat.S_IMODE(mode))  # an existing file keeps its mode
        replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
