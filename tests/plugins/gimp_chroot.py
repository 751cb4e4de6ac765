"""A Debian 13 ("trixie") chroot holding GIMP 3, for tests/plugins/test_gimp_real.py.

    python tests/plugins/gimp_chroot.py          # create it (or check the cached one)

It is made with ``debootstrap --variant=minbase trixie DIR MIRROR`` from the Debian mirror
the host's apt already uses (read from /etc/apt/sources.list and sources.list.d; override
with $CDS_DEBIAN_MIRROR), then ``apt-get install --no-install-recommends`` of PACKAGES runs
*inside* it. Nothing is installed on the host and the host's apt sources are not touched.
The chroot is kept in a cache folder ($CDS_GIMP_CHROOT, default
``~/.cache/cds-desktop/gimp3-trixie``, about 1.2 GB) and reused; a stamp file inside it
lists the installed packages (a chroot without it is rebuilt). Building it takes a few
minutes. No file system is mounted into it: GIMP runs without /proc and /dev beyond the
device nodes debootstrap creates, and loopback networking is the host's, so the plug-in
reaches a bridge listening on the host's 127.0.0.1.

Needs root (debootstrap, chroot) or passwordless sudo, and the debootstrap package.
:class:`Unavailable` says in one line why the chroot cannot be had here; :class:`Unreachable`
(a subclass) means the mirror cannot be reached, the only reason CI accepts for skipping.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

SUITE = "trixie"
PACKAGES = ("gimp", "python3-gi", "gir1.2-gimp-3.0", "xvfb", "xauth")
STAMP = ".cds-gimp-chroot"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
GIMP_CONSOLE = "gimp-console-3.0"
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


class Unavailable(Exception):
    """The chroot cannot be made or used here; ``str()`` is one line saying why."""


class Unreachable(Unavailable):
    """debootstrap cannot reach the Debian mirror."""


def cache_dir() -> Path:
    override = os.environ.get("CDS_GIMP_CHROOT", "").strip()
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.expanduser("~/.cache")
    return Path(base) / "cds-desktop" / "gimp3-trixie"


# ----------------------------------------------------------------------------- the mirror
def host_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The first Debian archive (not the security one) in the host's apt sources."""
    override = os.environ.get("CDS_DEBIAN_MIRROR", "").strip()
    if override:
        return override.rstrip("/")
    files = [apt_dir / "sources.list"]
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        files += sorted(parts.glob("*.list")) + sorted(parts.glob("*.sources"))
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for uri, suites in _sources(text, deb822=path.suffix == ".sources"):
            if "debian" in uri and "security" not in uri:
                if not any(s.endswith("-security") for s in suites):
                    return uri.rstrip("/")
    return DEFAULT_MIRROR


def _sources(text: str, deb822: bool) -> list[tuple[str, list[str]]]:
    """(uri, suites) of the binary ``deb`` entries of one sources file."""
    found = []
    if deb822:
        for stanza in re.split(r"\n\s*\n", text):
            fields = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.split()
            if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"]) != ["no"]:
                found += [(uri, fields.get("suites", [])) for uri in fields.get("uris", [])]
        return found
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            found.append((words[1], [words[2]]))
    return found


def check_mirror(mirror: str, timeout: float = 20.0) -> None:
    """Unreachable unless the mirror serves the suite's release file."""
    url = f"{mirror}/dists/{SUITE}/InRelease"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return
    except Exception as exc:  # noqa: BLE001 - any failure means: cannot reach it
        reason = getattr(exc, "reason", None) or exc
        raise Unreachable(
            f"debootstrap cannot reach the Debian mirror {mirror} ({reason})"
        ) from None


# ----------------------------------------------------------------------------- privileges
def root_prefix() -> list[str]:
    """[] as root, ["sudo", "-n"] with passwordless sudo, else Unavailable."""
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo")
    if sudo and subprocess.run([sudo, "-n", "true"], capture_output=True).returncode == 0:
        return [sudo, "-n"]
    raise Unavailable("making and entering the GIMP 3 chroot needs root or passwordless sudo")


def _run(argv: list[str], log: Path, what: str, timeout: float) -> None:
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{what} took more than {timeout:.0f} s (log: {log})") from None
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        raise RuntimeError(
            f"{what} failed (exit {proc.returncode}, log {log}):\n" + "\n".join(tail)
        )


# ----------------------------------------------------------------------------- building
def ensure(root: Path | None = None) -> Path:
    """The ready chroot (created or completed if needed). Raises Unavailable/Unreachable
    when it cannot be had here, RuntimeError when building it failed."""
    root = Path(root or cache_dir())
    prefix = root_prefix()
    wanted = " ".join(PACKAGES)
    stamp = root / STAMP
    if stamp.is_file() and stamp.read_text().strip() == wanted:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others wait and reuse
        if stamp.is_file() and stamp.read_text().strip() == wanted:
            return root
        log = root.parent / f"{root.name}.log"
        if not (root / "usr" / "bin" / "apt-get").exists():
            _bootstrap(root, prefix, log)
        _install(root, prefix, log)
        subprocess.run([*prefix, "sh", "-c", f'echo "{wanted}" > "{stamp}"'], check=True)
    return root


def _bootstrap(root: Path, prefix: list[str], log: Path) -> None:
    debootstrap = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin")
    if debootstrap is None:
        raise Unavailable("debootstrap is not installed (apt-get install debootstrap)")
    mirror = host_mirror()
    check_mirror(mirror)
    partial = root.with_name(root.name + ".partial")
    if partial.exists():
        subprocess.run([*prefix, "rm", "-rf", "--one-file-system", str(partial)], check=True)
    argv = [*prefix, debootstrap, "--variant=minbase", SUITE, str(partial), mirror]
    _run(argv, log, f"debootstrap {SUITE} from {mirror}", timeout=1800)
    if root.exists():
        subprocess.run([*prefix, "rm", "-rf", "--one-file-system", str(root)], check=True)
    subprocess.run([*prefix, "mv", str(partial), str(root)], check=True)


def _install(root: Path, prefix: list[str], log: Path) -> None:
    if Path("/etc/resolv.conf").is_file():  # name resolution inside, as on the host
        subprocess.run([*prefix, "cp", "-L", "/etc/resolv.conf", str(root / "etc")], check=True)
    script = "apt-get update -qq && apt-get install -y -qq --no-install-recommends " + " ".join(
        PACKAGES
    )
    env = ["/usr/bin/env", "-i", f"PATH={PATH}", "DEBIAN_FRONTEND=noninteractive", "LANG=C.UTF-8"]
    argv = [*prefix, "chroot", str(root), *env, "sh", "-c", script]
    _run(argv, log, f"apt-get install {' '.join(PACKAGES)} in the chroot", timeout=1800)


# ----------------------------------------------------------------------------- running GIMP
def gimp_batch(
    root: Path,
    home: str,
    code: str,
    env: dict[str, str] | None = None,
    display: bool = False,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """Run ``gimp-console-3.0 -i --batch-interpreter=python-fu-eval -b CODE --quit`` in the
    chroot with a clean environment, HOME=home (a path inside the chroot) and ``env``;
    ``display`` runs it under xvfb-run (for GTK dialogs). Output is text, stdout+stderr."""
    values = {
        "PATH": PATH,
        "HOME": home,
        "XDG_CONFIG_HOME": f"{home}/.config",
        "XDG_CACHE_HOME": f"{home}/.cache",
        "XDG_DATA_HOME": f"{home}/.local/share",
        "LANG": "C.UTF-8",
    }
    values.update(env or {})
    command = [GIMP_CONSOLE, "-i", "--batch-interpreter=python-fu-eval", "-b", code, "--quit"]
    if display:
        command = ["xvfb-run", "-a", *command]
    argv = [*root_prefix(), "chroot", str(root), "/usr/bin/env", "-i"]
    argv += [f"{k}={v}" for k, v in values.items()] + command
    return subprocess.run(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )


def main() -> int:
    """Create or check the chroot; one line on stdout either way."""
    try:
        root = ensure()
    except Unavailable as exc:
        print(f"GIMP 3 chroot: not available: {exc}")
        return 3 if isinstance(exc, Unreachable) else 2
    except RuntimeError as exc:
        print(f"GIMP 3 chroot: {exc}")
        return 1
    print(f"GIMP 3 chroot: ready at {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
