"""Trust on first use for a bridge on another computer: the SHA-256 fingerprint of its
self-signed TLS certificate is remembered (``known-bridges.json`` in the config folder) the
first time a client connects, and a different certificate later is refused, like SSH's
known_hosts. A fingerprint given explicitly (copied from the server's console) must match
from the first connection on.

Standard library only, Python 3.8+.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from . import config, fileio

PINS_FILE = "known-bridges.json"
_HEX64 = re.compile(r"[0-9A-F]{64}")


class PinError(Exception):
    """The server's certificate is not the expected one (or a fingerprint is malformed);
    ``str()`` is a one-line message for the user."""


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as ``AB:CD:...`` (the form ``openssl x509 -fingerprint
    -sha256`` prints)."""
    return format_fingerprint(hashlib.sha256(der).hexdigest())


def format_fingerprint(hex_digits: str) -> str:
    digits = hex_digits.upper()
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def normalize(text: str) -> str:
    """A pasted fingerprint in the canonical ``AB:CD:...`` form (case, colons, spaces and an
    optional ``SHA256`` prefix do not matter). Raises PinError if it is not 32 bytes of hex."""
    digits = re.sub(r"[\s:]", "", str(text)).upper()
    if digits.startswith("SHA256"):
        digits = digits[6:].lstrip("=")
    if not _HEX64.fullmatch(digits):
        raise PinError(f"{text!r} is not a SHA-256 fingerprint (64 hex digits, colons optional)")
    return format_fingerprint(digits)


def pins_path() -> Path:
    return config.config_dir() / PINS_FILE


class PinStore:
    """The fingerprints pinned so far, keyed ``host:port``, in a JSON file (0600)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else pins_path()

    def load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, NotADirectoryError):  # nothing pinned yet
            return {}
        except (OSError, ValueError) as exc:
            raise PinError(f"cannot read the pinned certificates in {self.path}: {exc}") from None
        if not isinstance(data, dict):
            raise PinError(f"{self.path} is not a JSON object of host:port -> fingerprint")
        return {str(k): str(v) for k, v in data.items()}

    def get(self, host: str, port: int) -> str | None:
        return self.load().get(_key(host, port))

    def pin(self, host: str, port: int, fp: str) -> None:
        pins = self.load()
        pins[_key(host, port)] = normalize(fp)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(pins, indent=1, sort_keys=True) + "\n"
        fileio.write_bytes_atomic(self.path, text.encode("utf-8"))

    def forget(self, host: str, port: int) -> bool:
        pins = self.load()
        if pins.pop(_key(host, port), None) is None:
            return False
        self.path.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return True


def _key(host: str, port: int) -> str:
    return f"[{host}]:{int(port)}" if ":" in host else f"{host}:{int(port)}"


def check(
    der: bytes,
    host: str,
    port: int,
    expected: str | None = None,
    store: PinStore | None = None,
) -> bool:
    """Accept or refuse the certificate ``der`` of ``host:port``. Returns True if it was
    pinned just now (first use), False if it matched a pin. Raises PinError if refused.

    ``expected`` (a fingerprint the user copied from the server) must match; then it is
    pinned too. Without it, the pinned fingerprint must match; with neither, it is pinned.
    ``store=None`` pins nothing (``expected`` is then required)."""
    seen = fingerprint(der)
    where = f"{host}:{port}"
    if expected:
        want = normalize(expected)
        if seen != want:
            raise PinError(
                f"the bridge at {where} has certificate {seen}, not the expected {want}: "
                "check the fingerprint the server printed (someone may be intercepting "
                "the connection)"
            )
    elif store is None:
        raise PinError(f"no fingerprint to check the bridge at {where} against")
    pinned = store.get(host, port) if store is not None else None
    if pinned is not None and pinned != seen:
        if expected:  # the user vouches for the new certificate
            return _record(store, host, port, seen, required=False)
        raise PinError(
            f"the certificate of the bridge at {where} CHANGED (pinned {pinned}, now {seen}). "
            "If you made a new certificate on the server, enter its new fingerprint; "
            "otherwise someone may be intercepting the connection. Refusing to connect."
        )
    if pinned is None and store is not None:
        return _record(store, host, port, seen, required=not expected)
    return False


def _record(store: PinStore, host: str, port: int, fp: str, required: bool) -> bool:
    """Pin ``fp``; if the file cannot be written, refuse only when nothing else vouches for
    the certificate (trust on first use needs the pin to mean anything later)."""
    try:
        store.pin(host, port, fp)
    except OSError as exc:
        if required:
            raise PinError(
                f"cannot remember the certificate of {host}:{port} in {store.path} "
                f"({exc.strerror or exc}): enter the fingerprint the server printed instead"
            ) from None
        return False
    return True


def client_context():
    """A TLS client context for a self-signed, pinned server certificate: no CA or hostname
    check (the fingerprint is the check), TLS 1.2 or newer."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx
