"""Export a diffusers AutoencoderKL to ONNX (encoder + decoder) and cache the result.

The graphs follow the VaeBackend convention (base.py):

* ``encoder.onnx``: ``image`` (B, 3, H, W) float32 in [-1, 1] -> ``latent`` (B, C, H/f, W/f)
  = posterior mean x scaling_factor;
* ``decoder.onnx``: ``latent`` (scaled) -> ``image`` in [-1, 1], clamped.

Batch, height and width are dynamic axes; opset 17; TorchScript exporter (``dynamo=False``:
with torch 2.13 the dynamo exporter needs a batch-2 example, emits opset 18 and converts it down
with errors on ``Pad``, and takes ~70x longer).

Cache: ``<cache>/onnx-vae/<identity>/`` where ``<cache>`` is ``$CDS_CACHE_DIR`` or
``platformdirs.user_cache_dir("cds-desktop")`` and ``<identity>`` hashes the VAE config and the
bytes of its weights. ``meta.json`` (written last) records the format, opset, factors, identity
and exporter versions; an export whose sidecar is missing, unreadable or mismatched is redone.
docs/design.md: the engine writes no files - this cache is the one documented exception, and
every write lives in this module (through ``cds_desktop.fileio``: temp file in the same folder +
``os.replace``, never a partial file).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from cds_desktop.fileio import atomic_path

from .base import vae_scale_factor

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when the wrapper modules or the file layout change
OPSET = 17
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
DECODER_FP16_FILE = "decoder.fp16.onnx"
ENCODER_FP16_FILE = "encoder.fp16.onnx"
SIDECAR_FILE = "meta.json"
CACHE_ENV = "CDS_CACHE_DIR"


class ExportError(RuntimeError):
    """The VAE could not be exported (the caller falls back to the torch backend)."""


# ----------------------------------------------------------------------------- graphs
class EncoderGraph(torch.nn.Module):
    """image in [-1, 1] -> posterior mean x scaling_factor (the VaeBackend convention)."""

    def __init__(self, vae: torch.nn.Module) -> None:
        super().__init__()
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(image).latent_dist.mean * self.scaling_factor


class DecoderGraph(torch.nn.Module):
    """scaled latent -> image in [-1, 1] (clamped)."""

    def __init__(self, vae: torch.nn.Module) -> None:
        super().__init__()
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latent / self.scaling_factor).sample.clamp(-1.0, 1.0)


# ----------------------------------------------------------------------------- identity
def vae_identity(vae: torch.nn.Module) -> str:
    """A 20-hex-digit id of this VAE: sha256 of its config and of its weights' fp32 bytes.

    Hashing every byte costs ~0.3 s for SD's 84M-parameter VAE; it makes a stale cache
    (another fine-tune, same config) impossible rather than unlikely.
    """
    h = hashlib.sha256()
    config = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in vae.state_dict().items():
        data = tensor.detach().to(device="cpu", dtype=torch.float32).contiguous()
        h.update(f"{name}:{tuple(data.shape)}".encode())
        h.update(memoryview(data.numpy()).cast("B"))
    return h.hexdigest()[:20]


def cache_root() -> Path:
    """``$CDS_CACHE_DIR`` if set (tests), else the platform's user cache dir for cds-desktop."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("cds-desktop"))


def export_dir(identity: str, root: Path | None = None) -> Path:
    return (root or cache_root()) / "onnx-vae" / identity


# ----------------------------------------------------------------------------- sidecar
@dataclass(frozen=True)
class ExportInfo:
    """A complete, validated export: where its files are and what the sidecar says."""

    folder: Path
    meta: dict

    @property
    def encoder(self) -> Path:
        return self.folder / ENCODER_FILE

    @property
    def decoder(self) -> Path:
        return self.folder / DECODER_FILE


def expected_meta(vae: torch.nn.Module, identity: str) -> dict:
    """The sidecar fields a valid export must match (versions are recorded, not matched)."""
    return {
        "format": FORMAT_VERSION,
        "opset": OPSET,
        "identity": identity,
        "scaling_factor": float(vae.config.scaling_factor),
        "scale_factor": vae_scale_factor(vae),
        "latent_channels": int(vae.config.latent_channels),
    }


def read_valid_export(folder: Path, expected: dict) -> ExportInfo | None:
    """The export in ``folder`` if its sidecar matches ``expected`` and its files are whole."""
    try:
        meta = json.loads((folder / SIDECAR_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or any(meta.get(k) != v for k, v in expected.items()):
        log.info("ONNX VAE export in %s is stale; it will be redone", folder)
        return None
    sizes = meta.get("sizes", {})
    for name in (ENCODER_FILE, DECODER_FILE):
        path = folder / name
        if not path.is_file() or path.stat().st_size != sizes.get(name):
            log.info("ONNX VAE export file %s is missing or truncated; it will be redone", path)
            return None
    return ExportInfo(folder, meta)


# ----------------------------------------------------------------------------- writing
def _write_json(target: Path, data: dict) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")


def _export_graph(module: torch.nn.Module, example: torch.Tensor, names: tuple, out: Path) -> None:
    src, dst = names
    with warnings.catch_warnings():
        # TracerWarnings come from diffusers' shape asserts / `contiguous()` branches
        # (benign: the tests compare ONNX with torch at other shapes); the exporter's own
        # deprecation notice for the TorchScript path is expected.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(out),
            dynamo=False,
            opset_version=OPSET,
            input_names=[src],
            output_names=[dst],
            dynamic_axes={
                src: {0: "batch", 2: "height", 3: "width"},
                dst: {0: "batch", 2: "out_height", 3: "out_width"},
            },
            do_constant_folding=True,
        )


def export_vae(vae: torch.nn.Module, folder: Path, identity: str, source: str = "") -> ExportInfo:
    """Export encoder and decoder of ``vae`` into ``folder`` (atomically), then the sidecar."""
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_temps(folder)
    with contextlib.suppress(FileNotFoundError):
        os.remove(folder / SIDECAR_FILE)  # an export in progress is never "valid"
    for stale in (ENCODER_FP16_FILE, DECODER_FP16_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.remove(folder / stale)
    module = _fp32_cpu(vae)
    f = vae_scale_factor(module)
    channels = int(module.config.latent_channels)
    log.info("exporting the VAE of %s to ONNX in %s (once per model)", source or "model", folder)
    with torch.no_grad():
        for graph, example, names, name in (
            (
                EncoderGraph(module),
                torch.zeros(1, 3, 8 * f, 8 * f),
                ("image", "latent"),
                ENCODER_FILE,
            ),
            (
                DecoderGraph(module),
                torch.zeros(1, channels, 8, 8),
                ("latent", "image"),
                DECODER_FILE,
            ),
        ):
            with atomic_path(folder / name) as tmp:
                _export_graph(graph.eval(), example, names, tmp)
    meta = expected_meta(module, identity) | {
        "source": source,
        "exporter": "torch.onnx.export(dynamo=False)",
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "sizes": {n: (folder / n).stat().st_size for n in (ENCODER_FILE, DECODER_FILE)},
    }
    _write_json(folder / SIDECAR_FILE, meta)
    return ExportInfo(folder, meta)


def _remove_abandoned_temps(folder: Path, min_age_s: float = 3600.0) -> None:
    """Delete temp files that a killed export left behind (old enough not to be in use)."""
    now = time.time()
    for tmp in folder.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > min_age_s:
                tmp.unlink()


def _fp32_cpu(vae: torch.nn.Module) -> torch.nn.Module:
    """The VAE itself if already fp32 on CPU, else an fp32 CPU copy (the caller's is untouched)."""
    p = next(vae.parameters())
    if p.dtype == torch.float32 and p.device.type == "cpu":
        return vae.eval()
    import copy

    return copy.deepcopy(vae).to(device="cpu", dtype=torch.float32).eval()


def ensure_export(
    vae: torch.nn.Module, source: str = "", force: bool = False, root: Path | None = None
) -> ExportInfo:
    """Return a valid cached export of ``vae``, exporting it first if missing/stale/``force``.

    Raises ExportError (one readable line) if exporting fails.
    """
    identity = vae_identity(vae)
    folder = export_dir(identity, root)
    if not force:
        found = read_valid_export(folder, expected_meta(vae, identity))
        if found is not None:
            log.info("reusing the ONNX VAE export in %s", folder)
            return found
    try:
        return export_vae(vae, folder, identity, source)
    except Exception as exc:  # exporter/IO errors come in many types; the caller falls back
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"could not export the VAE to ONNX in {folder}: {reason}") from exc


def fp16_graph(info: ExportInfo, which: str) -> Path | None:
    """An fp16 copy (float32 inputs/outputs) of the ``encoder``/``decoder`` graph, cached.

    Uses onnxruntime.transformers.float16 when importable; None (fp32 stays) otherwise.
    For the CUDA path only - untested on the CPU-only development machine.
    """
    try:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:
        log.info("onnxruntime.transformers.float16 is not importable; the ONNX VAE stays fp32")
        return None
    src = info.encoder if which == "encoder" else info.decoder
    target = info.folder / (ENCODER_FP16_FILE if which == "encoder" else DECODER_FP16_FILE)
    if target.is_file() and target.stat().st_mtime >= src.stat().st_mtime:
        return target
    try:
        model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
        with atomic_path(target) as tmp:
            onnx.save(model, str(tmp))
    except Exception as exc:  # converter failures are not fatal: fp32 still works
        log.warning("fp16 conversion of the ONNX VAE %s failed (%s); using fp32", which, exc)
        return None
    return target
