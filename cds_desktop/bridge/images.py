"""PNG <-> numpy for the bridge: size checks from the header alone, bounded decoding, and a
cheap encoder for results and previews.

Uploads stay compressed while their job waits in the queue (:func:`png_size` reads only the
PNG header); :func:`decode_png_array` runs when the job starts, after the size has been
checked against the per-job pixel budget, so a small highly-compressed upload cannot make
the server hold gigabytes of pixels.
"""

from __future__ import annotations

from io import BytesIO

import numpy as np
from PIL import Image

from plugin_bridge import protocol as P
from plugin_bridge.pngcodec import PngError, encode_png, read_png_size


class ImageError(ValueError):
    """An upload that is not a readable PNG (``code`` is the protocol code to report)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def png_size(data: bytes, what: str, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the PNG header; ImageError if it is not a PNG or too large."""
    try:
        width, height = read_png_size(data)
    except PngError as exc:
        raise ImageError(P.BAD_REQUEST, f"{what}: {exc}") from None
    if width * height > max_pixels:
        raise ImageError(
            P.TOO_LARGE,
            f"{what}: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}",
        )
    return width, height


def decode_png_array(data: bytes, what: str, max_pixels: int, mode: str = "RGBA") -> np.ndarray:
    """PNG bytes -> uint8 array (RGBA, or L for gray masks with ``mode="mask"``).

    The size is checked from the header first; Pillow's own decompression-bomb limit (a
    process-wide setting this module leaves alone) applies on top. Raises ImageError.
    """
    width, height = png_size(data, what, max_pixels)
    try:
        with Image.open(BytesIO(data), formats=["PNG"]) as img:
            if img.size != (width, height):
                raise ValueError(f"size {img.size} disagrees with the PNG header")
            img.load()
            if mode == "mask":
                mode = "L" if img.mode in ("1", "L", "I", "I;16") else "RGBA"
            converted = img if img.mode == mode else img.convert(mode)
            return np.asarray(converted)
    except Image.DecompressionBombError as exc:
        raise ImageError(P.TOO_LARGE, f"{what}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the client's bad PNG
        raise ImageError(P.BAD_REQUEST, f"{what}: not a readable PNG ({exc})") from None


def encode_png_array(arr: np.ndarray) -> bytes:
    """(H, W, 3|4) uint8 -> PNG with filter type 0 (cheap to decode in plug-ins' pure Python)."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    return encode_png(arr.shape[1], arr.shape[0], arr.tobytes(), channels=arr.shape[2], level=1)
