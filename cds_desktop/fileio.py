"""Atomic file writes for the app, the CLI and the engine's ONNX export cache.

Every file cds-desktop writes goes through :func:`atomic_write` (or :func:`atomic_path` when
a library insists on writing to a path itself): the data goes to a temporary file in the
target's folder, is flushed to disk, and then replaces the target in one ``os.replace``. A
reader never sees a partial file, and a failure (full disk, a bad encoder, Ctrl+C) leaves the
previous file untouched and no temporary file behind.

Permissions are what a plain ``open(path, "wb")`` gives: a new file gets ``0o666`` minus the
process umask (the operating system applies it, as for ``open``), and an existing file keeps
its mode. (``tempfile.mkstemp`` would give ``0o600`` whatever the umask.)

On Windows, ``os.replace`` fails with ``PermissionError`` while another program holds the
target open (an image viewer, an antivirus scanner, a sync client); :func:`replace` retries
for about a second and a half before giving up.

Standard library only: the engine, the app and the CLI all use it. The plug-in side has its
own copy with the same behaviour (``plugin_bridge/fileio.py``), because plug-in code runs in
the host's Python and may not import this package.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

#: pauses between os.replace attempts that failed with PermissionError (about 1.5 s in all)
REPLACE_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8)

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def _create_temp(target: Path) -> tuple[int, Path]:
    """Create and open a new temporary file next to ``target`` with ``open()``'s mode."""
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, _FLAGS, 0o666), tmp  # the OS applies the umask
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file next to {target}")


def _keep_existing_mode(tmp: Path, target: Path) -> None:
    """An existing target keeps its permission bits, as ``open(target, "wb")`` would."""
    try:
        st = os.stat(target)
    except OSError:
        return
    if stat.S_ISREG(st.st_mode):
        with contextlib.suppress(OSError):
            os.chmod(tmp, stat.S_IMODE(st.st_mode))


def replace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``os.replace`` retried on PermissionError (Windows: target held open by a viewer)."""
    for delay in REPLACE_DELAYS:
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            time.sleep(delay)
    os.replace(src, dst)


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` by calling ``write(f)`` on a temporary file, then replacing ``path``.

    The folder must exist. Any exception from ``write`` or the file system propagates; the
    target is then unchanged and the temporary file removed.
    """
    target = Path(path)
    fd, tmp = _create_temp(target)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _keep_existing_mode(tmp, target)
        replace(tmp, target)
    except BaseException:
        _discard(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(data))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for a library that writes to a path itself;
    when the block ends without an exception the file replaces ``path``.

    The temporary file exists (empty, with ``open()``'s mode) when the block starts.
    """
    target = Path(path)
    fd, tmp = _create_temp(target)
    os.close(fd)
    try:
        yield tmp
        _keep_existing_mode(tmp, target)
        replace(tmp, target)
    except BaseException:
        _discard(tmp)
        raise
