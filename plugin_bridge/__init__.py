"""plugin_bridge: the wire protocol and client of the cds-desktop bridge (stdlib only).

Runs inside Krita's and GIMP's own Python: never imports cds_desktop, torch, numpy, PIL or
Qt. ``protocol`` is the framing and message set (docs/bridge-protocol.md), ``client`` the
blocking client and ``python -m plugin_bridge.client`` CLI, ``pngcodec`` a small PNG codec.
"""

from .protocol import DEFAULT_PORT, PROTOCOL_VERSION

__all__ = ["DEFAULT_PORT", "PROTOCOL_VERSION"]
