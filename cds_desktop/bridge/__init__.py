"""The loopback bridge that lets Krita/GIMP plug-ins run edits: plugin_bridge.protocol <->
engine.jobs. One module per concern:

* :mod:`.token`      the token file (format, permissions, the move from the old Windows
                     location) and the constant-time proofs
* :mod:`.privacy`    owner-only files on every OS (0600, or an icacls ACL on Windows)
* :mod:`.challenge`  the server's side of the challenge-response (maths: plugin_bridge.auth)
* :mod:`.tls`        remote mode: certificate, TLS socket safe for a reader and a writer thread
* :mod:`.images`     PNG <-> numpy, size checks from the header alone
* :mod:`.requests`   an ``edit`` message validated into a frozen EditSpec
* :mod:`.session`    one client's requests and jobs, socket-free (``send=`` any callable)
* :mod:`.connection` handshake, reader loop and writer thread of one socket
* :mod:`.server`     listening socket, accept loop, limits, lifecycle, status

The ``--serve`` command line is :mod:`cds_desktop.serve`. The protocol is specified in
docs/bridge-protocol.md.
"""

from .images import decode_png_array, encode_png_array
from .limits import ServerLimits
from .server import BridgeServer, BridgeServerError, BridgeStatus, check_host
from .session import FAILURE_CODES, ClientSession, Deferred, Outgoing
from .token import ensure_token

__all__ = [
    "FAILURE_CODES",
    "BridgeServer",
    "BridgeServerError",
    "BridgeStatus",
    "ClientSession",
    "Deferred",
    "Outgoing",
    "ServerLimits",
    "check_host",
    "decode_png_array",
    "encode_png_array",
    "ensure_token",
]
