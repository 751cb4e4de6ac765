"""`cds-desktop --self-test`: a headless end-to-end check of this installation (or bundle).

Loads the embedded demo model (or the tiny random fixture with ``--model tiny-random``), runs a
short edit with the torch VAE and with the ONNX VAE, starts the plug-in bridge on a free
loopback port and completes one edit through the stdlib client. Prints one summary line;
exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from cds_desktop.logs import setup_logging

STEPS = 4


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A 64x64 red square on a light background and a mask around it."""
    img = np.full((64, 64, 4), 240, np.uint8)
    img[..., 3] = 255
    img[20:44, 18:42, :3] = (210, 40, 40)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 14:46] = 255
    return img, mask


class CheckFailed(RuntimeError):
    """A self-test check found a wrong result (raised even under ``python -O``)."""


def _check_edit(result, img: np.ndarray, mask: np.ndarray) -> None:
    out = result.image if hasattr(result, "image") else result
    if out.shape != img.shape or out.dtype != img.dtype:
        raise CheckFailed(f"result {out.shape} {out.dtype} != input {img.shape} {img.dtype}")
    if not np.array_equal(out[mask == 0], img[mask == 0]):
        raise CheckFailed("pixels outside the mask changed")
    if np.array_equal(out[mask > 0], img[mask > 0]):
        raise CheckFailed("the edit changed no pixel inside the mask")


def check_engine(model_spec: str, vae: str) -> str:
    from cds_desktop.engine import EditSettings, edit
    from cds_desktop.engine.models import load_model

    model = load_model(model_spec, device="cpu", vae_backend=vae)
    if model.vae.name != vae:
        raise RuntimeError(f"asked for the {vae} VAE but got {model.vae.name} (fallback)")
    img, mask = _scene()
    result = edit(
        model, img, "a red square", "a blue square", mask, EditSettings(steps=STEPS, seed=1)
    )
    _check_edit(result, img, mask)
    return model.label


def check_bridge(model_spec: str) -> str:
    from cds_desktop.bridge import BridgeServer
    from cds_desktop.engine.jobs import JobQueue
    from plugin_bridge.client import BridgeClient

    img, mask = _scene()
    queue = JobQueue()
    token = os.urandom(32).hex()  # a throw-away token: the user's token file is left alone
    server = BridgeServer(queue, port=0, model=model_spec, token=token, device="cpu")
    try:
        server.start()
        with BridgeClient(port=server.port, token=token, timeout=120) as client:
            msg = client.edit(
                _png(img),
                "a red square",
                "a blue square",
                mask_png=_png(mask),
                settings={"steps": STEPS, "seed": 2},
            )
        out = np.array(Image.open(io.BytesIO(msg.parts["image"])).convert("RGBA"))
        _check_edit(out, img, mask)
        return f"port {server.port}"
    finally:
        server.stop()
        queue.shutdown()


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cds-desktop --self-test", description=__doc__.split("\n")[0])
    p.add_argument(
        "--model", default="shapes-demo", help="model to test with (default: the embedded demo)"
    )
    args = p.parse_args(argv)
    setup_logging()
    os.environ.setdefault(
        "CDS_CACHE_DIR", os.path.join(tempfile.gettempdir(), "cds-desktop-selftest-cache")
    )
    checks: list[tuple[str, Callable[[], str]]] = [
        ("engine+torch-vae", lambda: check_engine(args.model, "torch")),
        ("engine+onnx-vae", lambda: check_engine(args.model, "onnx")),
        ("bridge", lambda: check_bridge(args.model)),
    ]
    passed, failed, label = [], [], ""
    for name, check in checks:
        start = time.perf_counter()
        try:
            info = check()
            label = label or info
            passed.append(f"{name} ok ({time.perf_counter() - start:.1f} s)")
        except Exception as exc:  # noqa: BLE001 - a self-test reports every failure
            failed.append(f"{name} FAILED: {type(exc).__name__}: {exc}")
    status = "PASS" if not failed else "FAIL"
    print(
        f"cds-desktop self-test {status}: model {label or args.model}; "
        + "; ".join(passed + failed)
    )
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
