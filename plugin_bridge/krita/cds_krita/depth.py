"""Krita's RGBA layer formats, as :mod:`pixelformat` sees them.

Facts checked in real Krita by ``tests/plugins/test_krita_real.py``: ``pixelData`` of an
RGBA layer is host-order channels, **B, G, R, A** for 8- and 16-bit integers and
**R, G, B, A** for 16- and 32-bit floats; a new document's default profile is
``sRGB-elle-V2-srgbtrc.icc`` for 8 bits and the linear ``sRGB-elle-V2-g10.icc`` for the
others (the profile's name says which curve the values follow).
"""

from __future__ import annotations

from typing import Any

from .cds_bridge import pixelformat as pf

COLOR_MODEL = "RGBA"
#: Krita's colorDepth() -> (pixelformat kind, channel order of pixelData).
DEPTHS = {
    "U8": (pf.U8, "BGRA"),
    "U16": (pf.U16, "BGRA"),
    "F16": (pf.F16, "RGBA"),
    "F32": (pf.F32, "RGBA"),
}


def supported(model: str, depth: str) -> bool:
    return model == COLOR_MODEL and depth in DEPTHS


def pixel_format(node: Any) -> pf.PixelFormat:
    """The format of ``node.pixelData``; the node must be RGBA at a supported depth."""
    kind, order = DEPTHS[str(node.colorDepth())]
    return pf.PixelFormat(kind, pf.transfer_from_profile_name(str(node.colorProfile())), order)


def color_space(node: Any) -> tuple[str, str, str]:
    return str(node.colorModel()), str(node.colorDepth()), str(node.colorProfile())
