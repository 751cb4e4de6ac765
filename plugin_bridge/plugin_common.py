"""What the Krita and GIMP plug-ins share: geometry, the edit's parameters and their checks,
where the bridge is and how long to wait for it.

Standard library only and Python 3.8+ (Krita and GIMP run plug-ins on their own Python):
tools/build_plugins.py vendors this module, with ``protocol``, ``client`` and ``pngcodec``,
into each plug-in's ``cds_bridge`` sub-package. Nothing here knows about Krita or GIMP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from . import client as bridge_client
from . import config as bridge_config
from . import pinning
from . import protocol as proto

#: Context kept around the selection: a fraction of the box's long side, at least MIN_MARGIN.
MARGIN_FRACTION = 0.5
MIN_MARGIN = 16
#: The new layer's name is the target prompt, shortened to this many characters.
MAX_LAYER_NAME = 60
FALLBACK_LAYER_NAME = "CDS edit"
MODES = ("cds", "dds")
#: Optimisation steps offered by both plug-ins' dialogs (the engine's default is 200).
DEFAULT_STEPS = 200
MIN_STEPS, MAX_STEPS = 1, 2000
#: Environment overrides for where the bridge listens (defaults: 127.0.0.1:47860).
HOST_ENV, PORT_ENV = "CDS_BRIDGE_HOST", "CDS_BRIDGE_PORT"
#: A remote bridge's certificate fingerprint (as `cds-desktop --serve --remote` prints it),
#: and "1" to use TLS even on a loopback address (a remote-mode bridge reached via loopback).
FINGERPRINT_ENV, TLS_ENV = "CDS_BRIDGE_FINGERPRINT", "CDS_BRIDGE_TLS"
#: The token itself (for a sandboxed host that cannot read the token file).
TOKEN_ENV = bridge_config.TOKEN_ENV
#: Seconds one network operation may take: connecting, the handshake, sending a request,
#: the answer to a ping. docs/bridge-protocol.md gives the server the same 10 s for the
#: handshake.
NETWORK_TIMEOUT = 10.0
#: Seconds of silence from the bridge during an edit after which a plug-in pings it (a live
#: bridge answers a ping at once, even while the model computes).
QUIET_BEFORE_PING = 5.0


class PluginError(Exception):
    """A user mistake or a refused document; ``str()`` is a one-line, user-readable message."""


# ----------------------------------------------------------------------------- geometry
class Rect(NamedTuple):
    """A box in image coordinates: left, top, width, height."""

    left: int
    top: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height

    @property
    def empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    @classmethod
    def of(cls, qrect: Any) -> Rect:
        """From a QRect (or anything with x()/y()/width()/height())."""
        return cls(int(qrect.x()), int(qrect.y()), int(qrect.width()), int(qrect.height()))

    def intersect(self, other: Rect) -> Rect:
        left, top = max(self.left, other.left), max(self.top, other.top)
        right, bottom = min(self.right, other.right), min(self.bottom, other.bottom)
        return Rect(left, top, max(0, right - left), max(0, bottom - top))

    def grow(self, margin: int) -> Rect:
        return Rect(
            self.left - margin, self.top - margin, self.width + 2 * margin, self.height + 2 * margin
        )


def context_margin(box: Rect, fraction: float = MARGIN_FRACTION, minimum: int = MIN_MARGIN) -> int:
    """How many pixels of context to keep around a selection's bounding box."""
    return max(minimum, int(round(fraction * max(box.width, box.height))))


def layer_name(target: str) -> str:
    """The new layer's name: the target prompt, on one line, shortened with an ellipsis."""
    name = " ".join(target.split())
    if len(name) > MAX_LAYER_NAME:
        name = name[: MAX_LAYER_NAME - 1].rstrip() + "\u2026"
    return name or FALLBACK_LAYER_NAME


# ----------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class EditParams:
    """What the user asked for. ``extra_settings`` (a dict or (key, value) pairs) is sent
    too; ``mode`` and ``steps`` override keys of the same name in it."""

    source: str
    target: str
    mode: str = "cds"
    steps: int = DEFAULT_STEPS
    extra_settings: Any = field(default_factory=dict)

    def settings(self) -> dict:
        return {**dict(self.extra_settings), "mode": self.mode, "steps": int(self.steps)}


def check_params(params: EditParams) -> None:
    """PluginError with one line saying what is wrong, before anything is sent."""
    if not params.source.strip():
        raise PluginError("the source prompt is empty: describe what the layer shows now")
    if not params.target.strip():
        raise PluginError("the target prompt is empty: describe what it should show")
    if params.mode not in MODES:
        raise PluginError(f"mode {params.mode!r}: expected one of {', '.join(MODES)}")
    try:
        steps = int(params.steps)
    except (TypeError, ValueError):
        raise PluginError(f"steps={params.steps!r}: expected a whole number") from None
    if not MIN_STEPS <= steps <= MAX_STEPS:
        raise PluginError(f"steps={steps}: expected {MIN_STEPS}..{MAX_STEPS}")


# ----------------------------------------------------------------------------- the bridge
def bridge_address() -> tuple[str, int]:
    """(host, port) of the bridge: $CDS_BRIDGE_HOST / $CDS_BRIDGE_PORT or the defaults."""
    host = os.environ.get(HOST_ENV, "").strip() or proto.DEFAULT_HOST
    raw = os.environ.get(PORT_ENV, "").strip()
    if not raw:
        return host, bridge_client.DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError:
        raise PluginError(f"${PORT_ENV}={raw!r}: expected a port number") from None
    if not 1 <= port <= 65535:
        raise PluginError(f"${PORT_ENV}={port}: expected a port number in 1..65535")
    return host, port


def parse_address(text: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT`` or ``[IPv6]:PORT`` as typed in a plug-in's host field;
    an empty field means :func:`bridge_address` (the environment or the defaults)."""
    text = text.strip()
    if not text:
        return bridge_address()
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    if not host or any(c.isspace() for c in host):
        raise PluginError(f"bridge address {text!r}: expected HOST or HOST:PORT")
    if not port_text:
        return host, bridge_address()[1]
    try:
        port = int(port_text)
    except ValueError:
        raise PluginError(f"bridge address {text!r}: {port_text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise PluginError(f"bridge address {text!r}: port {port} is not in 1..65535")
    return host, port


def make_client(
    client_name: str,
    timeout: float = NETWORK_TIMEOUT,
    address: str = "",
    fingerprint: str = "",
    token: str = "",
) -> bridge_client.BridgeClient:
    """A (not yet connected) client. ``address`` (HOST[:PORT]), ``fingerprint`` and ``token``
    come from the plug-in's fields; empty ones fall back to $CDS_BRIDGE_HOST/_PORT,
    $CDS_BRIDGE_FINGERPRINT and $CDS_BRIDGE_TOKEN (or the token file). A host that is not
    this computer is reached over TLS, its certificate pinned on first use."""
    host, port = parse_address(address)
    fingerprint = fingerprint.strip() or os.environ.get(FINGERPRINT_ENV, "").strip()
    if fingerprint:
        try:
            fingerprint = pinning.normalize(fingerprint)
        except pinning.PinError as exc:
            raise PluginError(str(exc)) from None
    tls = True if os.environ.get(TLS_ENV, "").strip() == "1" or fingerprint else None
    return bridge_client.BridgeClient(
        host,
        port,
        token=token.strip() or None,
        timeout=timeout,
        client_name=client_name,
        tls=tls,
        fingerprint=fingerprint or None,
    )


def pinned_note(client: bridge_client.BridgeClient) -> str:
    """A line to show after the first connection to a remote bridge ("" otherwise)."""
    if not client.pinned_now or not client.server_fingerprint:
        return ""
    return (
        f"first connection to {client.host}:{client.port}: its certificate "
        f"{client.server_fingerprint} is now trusted (compare it with the one the server printed)"
    )
