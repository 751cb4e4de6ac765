"""VAE backend running the exported encoder/decoder graphs in onnxruntime.

Same convention as every VaeBackend (base.py): float32 torch tensors in and out, on the
engine's device. CPU: ``CPUExecutionProvider``, tensors cross as numpy arrays. CUDA (needs
onnxruntime-gpu, untested on the CPU-only development machine): ``CUDAExecutionProvider`` with
IO binding, so inputs and outputs stay in torch's CUDA memory, and fp16 graphs converted from
the fp32 export when ``onnxruntime.transformers.float16`` is importable (SD VAEs can overflow in
fp16: a non-finite fp16 result is recomputed with the fp32 graph).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from .export import ExportInfo, ensure_export, fp16_graph
from .tiling import TilingPolicy, maybe_tiled_decode, maybe_tiled_encode

log = logging.getLogger(__name__)


def _cpu_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.intra_op_num_threads = torch.get_num_threads()  # honour the app's CPU-threads choice
    # No busy-waiting between runs: the UNet (torch) needs those cores right after a decode.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No arena: a 1024^2 decode would otherwise keep its ~GB of buffers for the app's lifetime
    # (not measurably slower here: the VAE's convolutions dwarf allocation costs).
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class _CpuGraph:
    """One graph on onnxruntime's CPU provider."""

    def __init__(self, path: Path, device: torch.device) -> None:
        self.session = _cpu_session(path)
        self.input = self.session.get_inputs()[0].name
        self.device = device

    def __call__(self, x: torch.Tensor, out_shape: tuple[int, ...]) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        (y,) = self.session.run(None, {self.input: array})
        return torch.from_numpy(y).to(self.device)


class _CudaGraph:
    """One graph on the CUDA provider with IO binding (untested here: no GPU on the dev box)."""

    def __init__(self, path: Path, fallback: Path | None, device: torch.device) -> None:
        import onnxruntime as ort

        preload = getattr(ort, "preload_dlls", None)  # ORT >= 1.21: use torch's CUDA/cuDNN
        if preload is not None:
            try:
                preload()
            except Exception as exc:  # best effort: the session reports a real failure below
                log.debug("onnxruntime.preload_dlls failed: %s", exc)
        self.device = device
        self.index = device.index if device.index is not None else torch.cuda.current_device()
        providers = [("CUDAExecutionProvider", {"device_id": self.index}), "CPUExecutionProvider"]
        self._make = lambda p: ort.InferenceSession(str(p), providers=providers)
        self.session = self._make(path)
        if self.session.get_providers()[0] != "CUDAExecutionProvider":  # ORT fell back to CPU
            raise RuntimeError("onnxruntime could not start its CUDA provider")
        self.fallback_path = fallback  # the fp32 graph when ``path`` is fp16
        self.fallback = None
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name

    def _run(self, session, x: torch.Tensor, out_shape: tuple[int, ...]) -> torch.Tensor:
        x = x.detach().to(self.device, torch.float32).contiguous()
        y = torch.empty(out_shape, device=self.device, dtype=torch.float32)
        binding = session.io_binding()
        for bind, name, t in (
            (binding.bind_input, self.input, x),
            (binding.bind_output, self.output, y),
        ):
            bind(name, "cuda", self.index, np.float32, tuple(t.shape), t.data_ptr())
        torch.cuda.synchronize(self.device)  # x is written on torch's stream
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return y

    def __call__(self, x: torch.Tensor, out_shape: tuple[int, ...]) -> torch.Tensor:
        y = self._run(self.session, x, out_shape)
        if self.fallback_path is None or bool(torch.isfinite(y).all()):
            return y
        if self.fallback is None:
            log.warning("the fp16 ONNX VAE overflowed; recomputing with the fp32 graph")
            self.fallback = self._make(self.fallback_path)
        return self._run(self.fallback, x, out_shape)


def cuda_provider_available() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def unavailable_reason(device: torch.device | str) -> str | None:
    """Why the ONNX backend cannot run on ``device`` (None if it can)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return (
            "vae_backend=onnx needs onnxruntime (pip install 'cds-desktop[onnx]', or "
            "'cds-desktop[gpu]' for onnxruntime-gpu)"
        )
    kind = torch.device(device).type
    if kind == "cuda" and not cuda_provider_available():
        return (
            f"onnxruntime {ort.__version__} has no CUDAExecutionProvider; install onnxruntime-gpu "
            "(pip uninstall onnxruntime; pip install 'cds-desktop[gpu]') to run the ONNX VAE on CUDA"
        )
    if kind not in ("cpu", "cuda"):
        return f"the ONNX VAE runs on cpu or cuda only, not on {kind}"
    return None


class OnnxVae:
    """VaeBackend on onnxruntime. Build with :meth:`from_vae` (exports/caches as needed)."""

    name = "onnx"

    def __init__(
        self,
        info: ExportInfo,
        device: torch.device | str = "cpu",
        tiling: TilingPolicy | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.scale_factor = int(info.meta["scale_factor"])
        self.scaling_factor = float(info.meta["scaling_factor"])
        self.latent_channels = int(info.meta["latent_channels"])
        self.tiling = tiling or TilingPolicy()
        self.info = info
        self._encoder, self._decoder = self._graphs(info)

    def _graphs(self, info: ExportInfo):
        why_not = unavailable_reason(self.device)
        if why_not:
            raise RuntimeError(why_not)
        if self.device.type == "cuda":
            enc16, dec16 = fp16_graph(info, "encoder"), fp16_graph(info, "decoder")
            return (
                _CudaGraph(enc16 or info.encoder, info.encoder if enc16 else None, self.device),
                _CudaGraph(dec16 or info.decoder, info.decoder if dec16 else None, self.device),
            )
        return _CpuGraph(info.encoder, self.device), _CpuGraph(info.decoder, self.device)

    @classmethod
    def from_vae(
        cls, vae, device: torch.device | str = "cpu", source: str = "", tiling=None
    ) -> OnnxVae:
        """Export ``vae`` (or reuse its cached export); a cache that will not load is redone."""
        info = ensure_export(vae, source=source)
        try:
            return cls(info, device, tiling)
        except Exception as exc:  # onnxruntime raises its own types for corrupt models
            log.warning(
                "cached ONNX VAE in %s does not load (%s); exporting again", info.folder, exc
            )
        return cls(ensure_export(vae, source=source, force=True), device, tiling)

    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return maybe_tiled_encode(self._encode, image, self.scale_factor, self.tiling)

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return maybe_tiled_decode(self._decode, latent, self.scale_factor, self.tiling)

    def _encode(self, image: torch.Tensor) -> torch.Tensor:
        b, _, h, w = image.shape
        f = self.scale_factor
        return self._encoder(image, (b, self.latent_channels, h // f, w // f))

    def _decode(self, latent: torch.Tensor) -> torch.Tensor:
        b, _, h, w = latent.shape
        f = self.scale_factor
        return self._decoder(latent, (b, 3, h * f, w * f))
