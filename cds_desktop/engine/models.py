"""Load the components CDS needs (UNet, VAE backend, text encoder(s), tokenizer(s), scheduler).

Model specs and families are described in engine/specs.py; single-file checkpoints in
engine/families.py. Every way of loading ends in engine/validation.py's checks, which turn a
broken model into one ModelError line naming the component at fault.

A folder may carry ``cds_model.json``: ``{"label", "kind", "native_size", "recommended": {...}}``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import specs
from .conditioning import pack
from .errors import ModelError
from .resources import resource_path
from .specs import (  # noqa: F401  (re-exported: callers import these names from here)
    CHECKPOINT_SUFFIXES,
    DEFAULT_VAE_BACKEND,
    DEMO_MODEL,
    FAMILIES,
    SD15_REPO,
    TINY_RANDOM,
)
from .tiny_random import tiny_random_components  # noqa: F401  (re-exported)
from .vae import create_backend, vae_scale_factor
from .validation import check_tokenizer_folder, precheck_folder, validate_components

log = logging.getLogger(__name__)

SIDECAR = "cds_model.json"


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
    #: a key of specs.FAMILIES ("" for the demo and tiny-random models)
    family: str = ""
    text_encoder_2: torch.nn.Module | None = None
    tokenizer_2: object | None = None
    #: SDXL: the unconditional ("") embedding is all zeros, as in SDXL's own pipelines
    zeros_for_empty_prompt: bool = False
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

    @property
    def prediction_type(self) -> str:
        return self.scheduler.config.prediction_type

    @torch.no_grad()
    def encode_prompt(self, text: str) -> torch.Tensor:
        """Text -> prompt conditioning, cached, in the UNet's dtype on the device.

        SD-1.x/2.x: the text encoder's last hidden state, (1, L, D). SDXL: both encoders'
        penultimate hidden states side by side plus the pooled embedding of the second,
        packed as (1, L + 1, D) (engine/conditioning.py).
        """
        if text not in self._prompt_cache:
            if self.text_encoder_2 is None:
                emb = self.text_encoder(self._ids(self.tokenizer, text))[0]
            else:
                emb = self._encode_two(text)
            self._prompt_cache[text] = emb.to(self.unet.dtype)
        return self._prompt_cache[text]

    def _ids(self, tokenizer, text: str) -> torch.Tensor:
        """Token ids padded to the tokenizer's length with its padding id (for the carried
        tokenizers the family's, ``cds_pad_id``: see families.load_tokenizer)."""
        length = tokenizer.model_max_length
        ids = tokenizer(text, truncation=True, max_length=length).input_ids
        pad = getattr(tokenizer, "cds_pad_id", tokenizer.pad_token_id)
        ids = ids + [pad] * (length - len(ids))
        return torch.tensor([ids], device=self.device)

    def _encode_two(self, text: str) -> torch.Tensor:
        hidden = []
        out = None
        for tok, enc in (
            (self.tokenizer, self.text_encoder),
            (self.tokenizer_2, self.text_encoder_2),
        ):
            out = enc(self._ids(tok, text), output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
        states, pooled = torch.cat(hidden, dim=-1), out.text_embeds
        if self.zeros_for_empty_prompt and not text.strip():
            states, pooled = torch.zeros_like(states), torch.zeros_like(pooled)
        return pack(states, pooled, self.vae.scale_factor)

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
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelError(f"device={device!r}: expected {specs.DEVICES_HELP}") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ModelError(
                f"device={device!r}: this PyTorch build sees no CUDA GPU (use --device cpu, or "
                "install a CUDA build of PyTorch)"
            )
        if dev.index is not None and dev.index >= count:
            raise ModelError(
                f"device={device!r}: there is no such GPU; this machine has {count} "
                f"(cuda:0 to cuda:{count - 1})"
            )
    elif dev.type == "mps":
        if not _mps_available():
            raise ModelError(
                f"device={device!r}: Apple's MPS backend is not available on this machine "
                "(use --device cpu)"
            )
    elif dev.type != "cpu":
        raise ModelError(f"device={device!r}: expected {specs.DEVICES_HELP}")
    return dev


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def pick_dtype(device: torch.device, dtype: str = "auto") -> torch.dtype:
    names = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in names:
        raise ModelError(f"dtype={dtype!r}: expected {', '.join(specs.DTYPES)}")
    return names[dtype]


# ----------------------------------------------------------------------------- loading
def describe_spec(spec: str) -> str:
    """The user-facing label of a spec (specs.label; kept for callers of this module)."""
    return specs.label(spec)


def load_model(
    spec: str = DEMO_MODEL,
    device: str = "auto",
    dtype: str = "auto",
    vae_backend: str = DEFAULT_VAE_BACKEND,
    family: str = "auto",
) -> LoadedModel:
    """Load a model by spec (engine/specs.py). ``family`` (``auto`` or a specs.FAMILIES key)
    forces the family of a single-file checkpoint and the per-family defaults of a folder.
    Raises ModelError with a one-line, readable message."""
    if family != "auto" and family not in FAMILIES:
        raise ModelError(
            f"family={family!r}: expected auto or one of {', '.join(specs.FAMILY_NAMES)}"
        )
    dev = pick_device(device)
    dt = pick_dtype(dev, dtype)
    if spec == TINY_RANDOM:
        parts = tiny_random_components()
        meta = {"label": specs.RANDOM_LABEL, "kind": "random", "native_size": 32}
    else:
        parts, meta = _load_parts(spec, family, dt)
    return _assemble(spec, parts, meta, dev, dt, vae_backend)


def _assemble(spec, parts, meta, dev, dt, vae_backend) -> LoadedModel:
    where = meta.get("where", spec)
    validate_components(parts, where)
    unet = _to(parts["unet"], dev, dt)
    text_encoder = _to(parts["text_encoder"], dev, dt)
    text_encoder_2 = parts.get("text_encoder_2")
    if text_encoder_2 is not None:
        text_encoder_2 = _to(text_encoder_2, dev, dt)
    vae_dtype = torch.float32 if dt == torch.float16 else dt  # SD VAEs overflow in fp16
    vae = create_backend(parts["vae"], vae_backend, dev, vae_dtype, identity=spec)
    family = meta.get("family", "")
    recommended = dict(FAMILIES[family].defaults()) if family in FAMILIES else {}
    recommended.pop("working_size", None)
    recommended.update(meta.get("recommended") or {})
    native = int(
        meta.get("native_size") or unet.config.sample_size * vae_scale_factor(parts["vae"])
    )
    return LoadedModel(
        spec=spec,
        label=meta.get("label") or specs.label(spec),
        kind=meta.get("kind", "sd"),
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=parts["tokenizer"],
        scheduler=parts["scheduler"],
        device=dev,
        dtype=dt,
        native_size=native,
        recommended=recommended,
        family=family,
        text_encoder_2=text_encoder_2,
        tokenizer_2=parts.get("tokenizer_2"),
        zeros_for_empty_prompt=bool(meta.get("zeros_for_empty_prompt", family == "sdxl")),
    )


def _to(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    if module.dtype != dtype:
        module = module.to(dtype=dtype)
    module = module.to(device=device).eval()
    module.requires_grad_(False)
    return module


def resolve_spec(spec: str) -> tuple[str, Path | None]:
    """Return (how, path): how is 'folder', 'file' or 'hub'. A spec that reads as a path but
    does not exist is an error here (it is never sent to the Hub as a repo id)."""
    if spec == DEMO_MODEL:
        path = resource_path("models", DEMO_MODEL)
        if not (path / "model_index.json").is_file():
            raise ModelError(
                f"the embedded demo model was not found at {path}. It ships with the repository "
                "(resources/models/shapes-demo); re-clone, or train it with "
                "`python tools/train_demo_model.py`"
            )
        return "folder", path
    if not spec or not spec.strip():
        raise ModelError("the model is empty: give shapes-demo, a folder, a file or a repo id")
    path = Path(os.path.expanduser(spec))
    if path.is_dir():
        return "folder", path
    if path.is_file():
        if path.suffix.lower() in CHECKPOINT_SUFFIXES:
            return "file", path
        raise ModelError(
            f"model file {path}: expected a .safetensors or .ckpt checkpoint (or a diffusers folder)"
        )
    if specs.looks_like_path(spec):
        raise ModelError(
            f"model path {path} does not exist (relative paths start from {Path.cwd()})"
        )
    return "hub", None


def _load_parts(spec: str, family: str, dtype: torch.dtype | None = None) -> tuple[dict, dict]:
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()  # the callers show their own progress
    transformers_logging.disable_progress_bar()
    how, path = resolve_spec(spec)
    if how == "file":
        from .families import load_single_file

        return load_single_file(path, family, dtype=dtype)
    if how == "folder" and not (path / "model_index.json").is_file():
        raise ModelError(
            f"{path} is a folder but not a diffusers model (no model_index.json); give the "
            "model's top folder, or a .safetensors/.ckpt file"
        )
    if how == "folder":
        precheck_folder(path)
    source = str(path) if how == "folder" else spec
    try:
        parts = _load_components(source, local=how == "folder")
    except ModelError:
        raise
    except Exception as exc:  # diffusers/hub raise many types; the user needs one line
        raise ModelError(_load_failure_message(spec, how, path, exc)) from None
    meta = _read_sidecar(path) if how == "folder" else {}
    meta.setdefault("where", source)
    if meta.get("kind") != "demo":
        detected = _family_of(parts)
        if family != "auto" and family.split("-")[0] != detected.split("-")[0]:
            raise ModelError(
                f"model {source}: --family {family} was asked for, but its components are "
                f"{FAMILIES[detected].label}"
            )
        meta["family"] = detected if family == "auto" else family
    return parts, meta


def _family_of(parts: dict) -> str:
    from .families import family_of_components

    return family_of_components(
        parts["unet"].config,
        parts["scheduler"].config.prediction_type,
        parts["text_encoder"].config,
    )


def _load_components(source: str, local: bool) -> dict:
    """Load a diffusers folder or cached repo component by component (so a failure names its
    component). The scheduler is read as DDPM: CDS needs only its noise schedule."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    index = _model_index(source, local)
    two = "text_encoder_2" in index
    if local:
        for name in ("tokenizer", "tokenizer_2") if two else ("tokenizer",):
            check_tokenizer_folder(Path(source) / name)
    kw = {"local_files_only": local or _offline()}
    parts: dict = {}
    loaders = [
        ("unet", lambda: UNet2DConditionModel.from_pretrained(source, subfolder="unet", **kw)),
        ("vae", lambda: AutoencoderKL.from_pretrained(source, subfolder="vae", **kw)),
        (
            "text_encoder",
            lambda: CLIPTextModel.from_pretrained(source, subfolder="text_encoder", **kw),
        ),
        ("tokenizer", lambda: CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **kw)),
        ("scheduler", lambda: DDPMScheduler.from_pretrained(source, subfolder="scheduler", **kw)),
    ]
    if two:
        loaders += [
            (
                "text_encoder_2",
                lambda: CLIPTextModelWithProjection.from_pretrained(
                    source, subfolder="text_encoder_2", **kw
                ),
            ),
            (
                "tokenizer_2",
                lambda: CLIPTokenizer.from_pretrained(source, subfolder="tokenizer_2", **kw),
            ),
        ]
    for name, load in loaders:
        try:
            parts[name] = load()
        except Exception as exc:
            raise _ComponentError(name, exc) from None
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if name in parts:
            parts[name] = parts[name].float().eval()
    return parts


class _ComponentError(Exception):
    def __init__(self, component: str, exc: Exception) -> None:
        super().__init__(f"component {component}: {_first_line(exc)}")
        self.component = component


def _model_index(source: str, local: bool) -> dict:
    if local:
        return json.loads((Path(source) / "model_index.json").read_text(encoding="utf-8"))
    from huggingface_hub import hf_hub_download

    with open(hf_hub_download(source, "model_index.json", local_files_only=_offline())) as f:
        return json.load(f)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() not in ("", "0", "false", "no")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0].strip() if text else type(exc).__name__
    return line.rstrip(". ")


def _load_failure_message(spec: str, how: str, path: Path | None, exc: Exception) -> str:
    reason = _first_line(exc)
    if how == "hub" and _offline() and "traffic has been disabled" in reason:
        reason = "it is not in the cache"
    if how == "hub":
        cache = os.environ.get("HF_HOME", "~/.cache/huggingface")
        mode = "in offline mode (HF_HUB_OFFLINE is set)" if _offline() else "or the Hub"
        return (
            f"could not load model {spec!r} from the Hugging Face cache ({cache}) {mode}: "
            f"{reason}. Download it once with {specs.download_hint(spec)}, or pass a local "
            "folder or .safetensors file with --model (a relative folder path needs ./)"
        )
    return f"could not load model from {path}: {reason}"


def _read_sidecar(path: Path) -> dict:
    f = path / SIDECAR
    if not f.is_file():
        return {}
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", f, exc)
        return {}
