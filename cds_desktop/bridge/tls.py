"""TLS for a bridge on another computer (``cds-desktop --serve --remote HOST``).

* :func:`ensure_certificate` makes a self-signed certificate and key on first start (with the
  ``cryptography`` package if it is installed, else the ``openssl`` program), owner-only,
  beside the token; later starts reuse them, so the fingerprint clients pinned stays valid.
* :class:`ServerTLS` is the listener's TLS side: its SSL context and fingerprint, and
  :meth:`~ServerTLS.wrap` for each accepted socket.
* :class:`TLSSocket` is what a connection then reads and writes. It drives an ``SSLObject``
  over memory buffers under a lock, because the connection's reader and writer threads use
  the socket at the same time and OpenSSL does not allow that on one SSL object. The TLS
  handshake runs lazily inside the first ``recv`` on the connection's own thread (never in
  the accept loop), bounded by the connection's handshake deadline like every other read.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from plugin_bridge import config, pinning

from .privacy import restrict_to_owner

log = logging.getLogger(__name__)

CERT_FILE, KEY_FILE = "bridge-cert.pem", "bridge-key.pem"
CERT_DAYS = 3650
COMMON_NAME = "cds-desktop bridge"
#: plaintext bytes encrypted per SSL write
WRITE_CHUNK = 64 * 1024
RAW_READ = 64 * 1024


class CertificateError(RuntimeError):
    """No certificate could be made or loaded; the message is one line for the user."""


# ----------------------------------------------------------------------------- certificate
def certificate_paths(folder: Path | None = None) -> tuple[Path, Path]:
    folder = Path(folder) if folder is not None else config.config_dir()
    return folder / CERT_FILE, folder / KEY_FILE


def ensure_certificate(
    folder: Path | None = None, generator: str | None = None
) -> tuple[Path, Path, bool]:
    """(certificate, key, created): the existing pair in ``folder`` (default: the config
    folder), or a new self-signed one. ``generator`` forces "cryptography" or "openssl"."""
    cert, key = certificate_paths(folder)
    if cert.exists() and key.exists():
        restrict_to_owner(key)
        fingerprint_of(cert)  # unreadable or not a certificate: say so now
        return cert, key, False
    cert.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    generator = generator or (
        "cryptography" if importlib.util.find_spec("cryptography") else "openssl"
    )
    with tempfile.TemporaryDirectory(prefix=".bridge-cert.", dir=cert.parent) as tmp:
        tmp_cert, tmp_key = Path(tmp) / CERT_FILE, Path(tmp) / KEY_FILE
        if generator == "cryptography":
            _generate_with_cryptography(tmp_cert, tmp_key)
        else:
            _generate_with_openssl(tmp_cert, tmp_key)
        restrict_to_owner(tmp_key)
        restrict_to_owner(tmp_cert)
        os.replace(tmp_key, key)
        os.replace(tmp_cert, cert)
    log.info("made a new TLS certificate %s (fingerprint %s)", cert, fingerprint_of(cert))
    return cert, key, True


def openssl_command(cert: Path, key: Path) -> list[str]:
    return [
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-sha256", "-nodes", "-days", str(CERT_DAYS), "-subj", f"/CN={COMMON_NAME}",
        "-keyout", str(key), "-out", str(cert),
    ]  # fmt: skip


def _generate_with_openssl(cert: Path, key: Path) -> None:
    if shutil.which("openssl") is None:
        raise CertificateError(
            "cannot make a TLS certificate: install the `cryptography` Python package or the "
            "`openssl` program"
        )
    try:
        done = subprocess.run(
            openssl_command(cert, key), capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise CertificateError(f"cannot make a TLS certificate with openssl: {exc}") from None
    if done.returncode != 0 or not cert.exists() or not key.exists():
        lines = (done.stderr or done.stdout or "").strip().splitlines()
        raise CertificateError(
            f"openssl could not make a TLS certificate: {lines[-1] if lines else done.returncode}"
        )


def _generate_with_cryptography(cert: Path, key: Path) -> None:  # pragma: no cover - optional
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .sign(private, hashes.SHA256())
    )
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def fingerprint_of(cert: Path) -> str:
    """SHA-256 fingerprint (``AB:CD:...``) of a PEM certificate file."""
    try:
        der = ssl.PEM_cert_to_DER_cert(Path(cert).read_text(encoding="ascii"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CertificateError(f"cannot read the TLS certificate {cert}: {exc}") from None
    return pinning.fingerprint(der)


# ----------------------------------------------------------------------------- server side
class ServerTLS:
    """The TLS side of a listener: context (TLS 1.2+), certificate fingerprint, wrap()."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert, self.key = Path(cert), Path(key)
        self.fingerprint = fingerprint_of(self.cert)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            self.context.load_cert_chain(str(self.cert), str(self.key))
        except (OSError, ssl.SSLError) as exc:
            raise CertificateError(f"cannot load the TLS certificate {cert}: {exc}") from None

    @classmethod
    def for_folder(cls, folder: Path | None = None) -> tuple[ServerTLS, bool]:
        """The certificate in ``folder`` (made if missing). Returns (ServerTLS, created)."""
        cert, key, created = ensure_certificate(folder)
        return cls(cert, key), created

    def wrap(self, sock: socket.socket) -> TLSSocket:
        return TLSSocket(sock, self.context, server_side=True)


class TLSSocket:
    """The socket interface a connection uses (recv, sendall, settimeout, fileno, pending,
    shutdown, close) over TLS, safe for one reader thread and one writer thread at once.

    Timeouts work like a socket's: each recv/sendall (including a TLS handshake it runs)
    ends within the timeout set by :meth:`settimeout`, else TimeoutError. A peer that closes
    without a TLS close_notify reads as a clean end of stream (like ``suppress_ragged_eofs``).
    """

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_side: bool) -> None:
        self._sock = sock
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side)
        self._lock = threading.Lock()  # the SSL object and the buffers
        self._send_lock = threading.Lock()  # keeps TLS records in order on the wire
        self._recv_lock = threading.Lock()  # one reader at a time
        self._timeout = sock.gettimeout()
        self._handshaken = False
        self._eof = False
        self._write_closed = False

    # ------------------------------------------------------------------ socket interface
    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def fileno(self) -> int:
        return self._sock.fileno()

    def getpeercert(self, binary_form: bool = False):
        return self._ssl.getpeercert(binary_form)

    def pending(self) -> int:
        """Bytes received but not returned yet (select() on the socket does not see them)."""
        with self._lock:
            return self._ssl.pending() + self._incoming.pending if self._handshaken else 0

    def recv(self, n: int) -> bytes:
        deadline = _deadline(self._timeout)
        with self._recv_lock:
            self._handshake(deadline)
            while True:
                with self._lock:
                    try:
                        data = self._ssl.read(n)
                    except ssl.SSLWantReadError:
                        data = None
                    except ssl.SSLZeroReturnError:  # close_notify: a clean end
                        data = b""
                    except ssl.SSLError:
                        if not (self._eof or self._write_closed):
                            raise
                        data = b""  # closed without close_notify, or after our shutdown
                self._flush(deadline)
                if data is not None:
                    return data
                if self._eof:
                    return b""
                self._fill(deadline)

    def sendall(self, data) -> None:
        deadline = _deadline(self._timeout)
        if not self._handshaken:
            with self._recv_lock:
                self._handshake(deadline)
        view = memoryview(data)
        with self._send_lock:
            if self._write_closed:
                raise BrokenPipeError("TLS connection closed for writing")
            for start in range(0, len(view), WRITE_CHUNK):
                with self._lock:
                    self._ssl.write(view[start : start + WRITE_CHUNK])
                    out = self._outgoing.read()
                self._send_raw(out, deadline)

    def shutdown(self, how: int) -> None:
        """SHUT_WR sends a TLS close_notify first (when no other thread is sending);
        SHUT_RDWR aborts at once."""
        if how == socket.SHUT_WR and self._handshaken and self._send_lock.acquire(timeout=1.0):
            try:
                if not self._write_closed:
                    self._write_closed = True
                    with self._lock:
                        try:
                            self._ssl.unwrap()
                        except ssl.SSLError:
                            pass  # want-read: the peer's close_notify is not needed
                        out = self._outgoing.read()
                    try:
                        self._send_raw(out, _deadline(1.0))
                    except OSError:
                        pass
            finally:
                self._send_lock.release()
        self._write_closed = True
        self._sock.shutdown(how)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> TLSSocket:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _handshake(self, deadline: float | None) -> None:
        while not self._handshaken:
            with self._lock:
                try:
                    self._ssl.do_handshake()
                    self._handshaken = True
                except ssl.SSLWantReadError:
                    pass
            self._flush(deadline)
            if not self._handshaken:
                if self._eof:
                    raise ConnectionResetError("the peer closed during the TLS handshake")
                self._fill(deadline)

    def _fill(self, deadline: float | None) -> None:
        """Wait for bytes from the network and hand them to the SSL object."""
        remaining = _remaining(deadline)
        ready, _, _ = select.select([self._sock], [], [], remaining)
        if not ready:
            raise TimeoutError("timed out")
        raw = self._sock.recv(RAW_READ)
        with self._lock:
            if raw:
                self._incoming.write(raw)
            else:
                self._eof = True
                self._incoming.write_eof()

    def _flush(self, deadline: float | None) -> None:
        """Send what the SSL object produced (handshake records, alerts, ...)."""
        if not self._outgoing.pending:
            return
        with self._send_lock:
            with self._lock:
                out = self._outgoing.read()
            self._send_raw(out, deadline)

    def _send_raw(self, data: bytes, deadline: float | None) -> None:
        if data:
            self._sock.settimeout(_remaining(deadline))
            self._sock.sendall(data)


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("timed out")
    return remaining
