"""Load the components CDS needs (UNet, VAE backend, text encoder, tokenizer, scheduler).

A model spec is one of:
* ``shapes-demo`` - the embedded demo model (resources/models/shapes-demo; 64x64 shapes only);
* ``tiny-random`` - a tiny randomly initialised pipeline for tests (random weights, no edits);
* a Hugging Face repo id (default Stable Diffusion: ``stable-diffusion-v1-5/stable-diffusion-v1-5``),
  honouring HF_HOME and HF_HUB_OFFLINE;
* a local diffusers folder; or a single ``.safetensors`` / ``.ckpt`` checkpoint file.

A folder may carry ``cds_model.json``: ``{"label", "kind", "native_size", "recommended": {"w_cut"}}``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import ModelError
from .resources import resource_path
from .vae import create_backend, vae_scale_factor

log = logging.getLogger(__name__)

DEMO_MODEL = "shapes-demo"
TINY_RANDOM = "tiny-random"
SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SIDECAR = "cds_model.json"
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")


@dataclass
class LoadedModel:
    """Everything an edit needs, on one device. Built by :func:`load_model`."""

    spec: str
    label: str
    kind: str  # "sd" | "demo" | "random"
    unet: torch.nn.Module
    vae: object  # VaeBackend
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler: object
    device: torch.device
    dtype: torch.dtype
    native_size: int
    recommended: dict = field(default_factory=dict)
    _prompt_cache: dict = field(default_factory=dict, repr=False)
    _rgb_projection: torch.Tensor | None = field(default=None, repr=False)

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this: VAE factor x UNet down-sampling."""
        unet_down = 2 ** (len(self.unet.config.down_block_types) - 1)
        return self.vae.scale_factor * unet_down

    @property
    def is_random(self) -> bool:
        return self.kind == "random"

    @torch.no_grad()
    def encode_prompt(self, text: str) -> torch.Tensor:
        """Text -> [1, L, D] embeddings on the device, in the UNet's dtype (cached per prompt)."""
        if text not in self._prompt_cache:
            ids = self.tokenizer(
                text,
                padding="max_length",
                max_length=self.tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids.to(self.device)
            emb = self.text_encoder(ids)[0]
            self._prompt_cache[text] = emb.to(self.unet.dtype)
        return self._prompt_cache[text]

    def rgb_projection(self) -> torch.Tensor:
        """A (C+1, 3) linear map latent -> RGB in [-1, 1] for cheap live previews.

        Fitted once by least squares on latents of a few synthetic colour images, so it works
        for any VAE (no hard-coded SD factors).
        """
        if self._rgb_projection is None:
            self._rgb_projection = fit_rgb_projection(self.vae, self.size_multiple)
        return self._rgb_projection


def fit_rgb_projection(vae, multiple: int, n: int = 12, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    side = max(multiple * 2, 32)
    side -= side % multiple
    blocks = rng.uniform(-1, 1, size=(n, 3, 4, 4)).astype(np.float32)
    images = torch.from_numpy(np.kron(blocks, np.ones((1, 1, side // 4, side // 4), np.float32)))
    latents = vae.encode(images).float().cpu()  # (n, C, h, w)
    small = torch.nn.functional.interpolate(images, size=latents.shape[-2:], mode="area")
    x = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    x = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    y = small.permute(0, 2, 3, 1).reshape(-1, 3)
    return torch.linalg.lstsq(x, y).solution  # (C+1, 3)


# ----------------------------------------------------------------------------- devices
def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ModelError(f"device={device!r}: expected auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("device='cuda' was asked for, but this PyTorch build sees no CUDA GPU")
    return dev


def pick_dtype(device: torch.device, dtype: str = "auto") -> torch.dtype:
    names = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in names:
        raise ModelError(f"dtype={dtype!r}: expected auto, fp32, fp16 or bf16")
    return names[dtype]


# ----------------------------------------------------------------------------- loading
def describe_spec(spec: str) -> str:
    if spec == TINY_RANDOM:
        return "tiny-random (RANDOM WEIGHTS - a test fixture, edits are noise)"
    if spec == DEMO_MODEL:
        return "shapes-demo (demo model: 64x64 coloured shapes only)"
    return spec


def load_model(
    spec: str = DEMO_MODEL, device: str = "auto", dtype: str = "auto", vae_backend: str = "torch"
) -> LoadedModel:
    """Load a model by spec (see module doc). Raises ModelError with a readable message."""
    dev = pick_device(device)
    dt = pick_dtype(dev, dtype)
    if spec == TINY_RANDOM:
        parts, meta = (
            tiny_random_components(),
            {
                "label": describe_spec(TINY_RANDOM),
                "kind": "random",
                "native_size": 32,
            },
        )
    else:
        parts, meta = _load_pipeline_parts(spec, dt)
    return _assemble(spec, parts, meta, dev, dt, vae_backend)


def _assemble(spec, parts, meta, dev, dt, vae_backend) -> LoadedModel:
    unet = _to(parts["unet"], dev, dt)
    text_encoder = _to(parts["text_encoder"], dev, dt)
    vae_dtype = torch.float32 if dt == torch.float16 else dt  # SD VAEs overflow in fp16
    vae = create_backend(parts["vae"], vae_backend, dev, vae_dtype, identity=spec)
    native = int(
        meta.get("native_size") or unet.config.sample_size * vae_scale_factor(parts["vae"])
    )
    return LoadedModel(
        spec=spec,
        label=meta.get("label") or describe_spec(spec),
        kind=meta.get("kind", "sd"),
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=parts["tokenizer"],
        scheduler=parts["scheduler"],
        device=dev,
        dtype=dt,
        native_size=native,
        recommended=dict(meta.get("recommended") or {}),
    )


def _to(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    if module.dtype != dtype:
        module = module.to(dtype=dtype)
    module = module.to(device=device).eval()
    module.requires_grad_(False)
    return module


def resolve_spec(spec: str) -> tuple[str, Path | None]:
    """Return (how, path): how is 'folder', 'file' or 'hub'."""
    if spec == DEMO_MODEL:
        path = resource_path("models", DEMO_MODEL)
        if not (path / "model_index.json").is_file():
            raise ModelError(
                f"the embedded demo model was not found at {path}. It ships with the repository "
                "(resources/models/shapes-demo); re-clone, or train it with "
                "`python tools/train_demo_model.py`."
            )
        return "folder", path
    path = Path(os.path.expanduser(spec))
    if path.is_dir():
        return "folder", path
    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        return "file", path
    looks_like_repo = (
        spec.count("/") == 1 and not spec.startswith((".", "/", "~")) and not path.exists()
    )
    if not looks_like_repo:
        raise ModelError(
            f"model {spec!r}: not a diffusers folder (with model_index.json), a .safetensors/.ckpt "
            "file, or a Hugging Face repo id like 'stable-diffusion-v1-5/stable-diffusion-v1-5'"
        )
    return "hub", None


def _load_pipeline_parts(spec: str, dt: torch.dtype) -> tuple[dict, dict]:
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()  # the callers show their own progress
    transformers_logging.disable_progress_bar()
    how, path = resolve_spec(spec)
    kwargs = {
        "torch_dtype": torch.float32,
        "safety_checker": None,
        "requires_safety_checker": False,
    }
    try:
        if how == "file":
            pipe = StableDiffusionPipeline.from_single_file(str(path), **kwargs)
        elif how == "folder":
            if not (path / "model_index.json").is_file():
                raise ModelError(
                    f"{path} is a folder but not a diffusers model (no model_index.json)"
                )
            pipe = StableDiffusionPipeline.from_pretrained(str(path), **kwargs)
        else:
            pipe = StableDiffusionPipeline.from_pretrained(spec, **kwargs)
    except ModelError:
        raise
    except Exception as exc:  # diffusers/hub raise many types; the user needs one message
        raise ModelError(_load_failure_message(spec, how, path, exc)) from None
    meta = _read_sidecar(path) if how == "folder" else {}
    parts = {k: getattr(pipe, k) for k in ("unet", "vae", "text_encoder", "tokenizer", "scheduler")}
    return parts, meta


def _load_failure_message(spec: str, how: str, path: Path | None, exc: Exception) -> str:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if how == "hub":
        cache = os.environ.get("HF_HOME", "~/.cache/huggingface")
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false")
        return (
            f"could not load model {spec!r} from the Hugging Face cache ({cache}) "
            f"{'in offline mode (HF_HUB_OFFLINE is set)' if offline else 'or the Hub'}: {reason}. "
            f"Download it once with `huggingface-cli download {spec}` (or pass a local diffusers "
            "folder or .safetensors file with --model); the embedded demo model is 'shapes-demo'."
        )
    return (
        f"could not load model from {path}: {reason}. Is it a complete, uncorrupted SD-1.x model?"
    )


def _read_sidecar(path: Path) -> dict:
    f = path / SIDECAR
    if not f.is_file():
        return {}
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", f, exc)
        return {}


# ----------------------------------------------------------------------------- tiny random
TINY_WORDS = (
    "a an the photo of cat dog pig cow horse bird red green blue yellow circle square "
    "triangle sky tree house car man woman"
).split()


def tiny_random_components(seed: int = 0) -> dict:
    """A tiny, seeded, randomly initialised SD-shaped pipeline (test fixture; < 2 s).

    VAE: 2x downsampling (so nothing may assume 8); UNet: (32, 64) channels with
    self-attention in its up block; CLIP text encoder of width 32; tokenizer files made locally.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from .tokenizer_files import write_clip_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer(tmp, TINY_WORDS))
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=16,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=(16, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
    )
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = DDPMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        clip_sample=False,
        prediction_type="epsilon",
    )
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": tokenizer,
        "scheduler": scheduler,
    }
