"""Cost of the plug-ins' pixel-depth conversions (plugin_bridge/pixelformat.py, pure Python).

For a square box of each Krita layer format: ``to_rgba8`` (document -> the 8-bit sRGB the
bridge takes) and ``composite`` (the 8-bit result back at the document's depth, with a
selection covering the middle quarter and a 6-pixel soft edge). The plug-ins run these on the
host's GUI thread (Krita) or in the plug-in process (GIMP). Standard library only, so it
runs under any host Python:

    python benchmarks/pixel_depth.py [--size 1024] [--repeat 3]
    ~/.pyenv/versions/3.8.18/bin/python benchmarks/pixel_depth.py
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import struct
import sys
import time
from array import array

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugin_bridge"))

import pixelformat as pf  # noqa: E402

FORMATS = (
    ("U8 sRGB", pf.PixelFormat(pf.U8, pf.SRGB, "BGRA")),
    ("U16 linear", pf.PixelFormat(pf.U16, pf.LINEAR, "BGRA")),
    ("F16 linear", pf.PixelFormat(pf.F16, pf.LINEAR, "RGBA")),
    ("F32 linear", pf.PixelFormat(pf.F32, pf.LINEAR, "RGBA")),
)


def source_pixels(fmt: pf.PixelFormat, count: int, rng: random.Random) -> bytes:
    if fmt.kind == pf.U8:
        return bytes(rng.randrange(256) for _ in range(count))
    if fmt.kind == pf.U16:
        return array("H", [rng.randrange(65536) for _ in range(count)]).tobytes()
    values = [rng.random() * 1.2 for _ in range(count)]
    if fmt.kind == pf.F32:
        return array("f", values).tobytes()
    return struct.pack(f"={count}e", *values)


def soft_rectangle(size: int) -> bytes:
    mask = bytearray(size * size)
    lo, hi = size // 4, 3 * size // 4
    ramp = bytes(range(40, 250, 35))
    for y in range(lo, hi):
        mask[y * size + lo : y * size + hi] = b"\xff" * (hi - lo)
        mask[y * size + lo - len(ramp) : y * size + lo] = ramp
    return bytes(mask)


def best_of(repeat: int, func, *args) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="box side in pixels")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    args = parser.parse_args()
    rng = random.Random(1)
    mask = soft_rectangle(args.size)
    n = args.size * args.size
    print(
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, ", end=""
    )
    print(f"box {args.size}x{args.size}, best of {args.repeat}")
    print("| format | to_rgba8 (s) | composite (s) |")
    print("|---|---|---|")
    for name, fmt in FORMATS:
        data = source_pixels(fmt, n * 4, rng)
        rgba = pf.to_rgba8(data, fmt)  # also builds the cached tables
        to8 = best_of(args.repeat, pf.to_rgba8, data, fmt)
        back = best_of(args.repeat, pf.composite, data, rgba, mask, fmt, rgba)
        print(f"| {name} | {to8:.2f} | {back:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
