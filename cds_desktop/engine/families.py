"""Single-file checkpoints: read their keys, recognise the model family, load them offline.

A single ``.safetensors`` / ``.ckpt`` file in the original (CompVis / Stability SGM) key layout
holds the UNet (``model.diffusion_model.*``), the VAE (``first_stage_model.*``) and the text
encoder(s) (``cond_stage_model.*`` or ``conditioner.embedders.N.*``), but no configs and no
tokenizer. The family is recognised from the keys (and a few shapes); its component configs come
from resources/models/configs/<family> and its tokenizer from resources/tokenizers/clip, so
loading needs no network and no Hugging Face cache.

SD-2.x 512-px (epsilon) and 768-px (v-prediction) files have the same keys. A file is taken as
v-prediction when it carries a ``v_pred`` key or a ``<name>.yaml`` beside it says
``parameterization: "v"``; a yaml without it means epsilon (``sd2-base``); with neither, the
768-px v-prediction release (``sd2``) is assumed and ``--family sd2-base`` selects the other.
"""

from __future__ import annotations

import json
import logging
import re
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import ModelError
from .resources import resource_path
from .specs import FAMILIES, FAMILY_NAMES, Family

log = logging.getLogger(__name__)

UNET = "model.diffusion_model."
VAE = "first_stage_model."
UNET_IN = UNET + "input_blocks.0.0.weight"
CLIP_L = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
OPEN_CLIP = "cond_stage_model.model.token_embedding.weight"
XL_CLIP_L = "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight"
XL_BIG_G = "conditioner.embedders.1.model.token_embedding.weight"
XL_REFINER = "conditioner.embedders.0.model.token_embedding.weight"

#: Families recognised only to say clearly that they are not supported: (key substring, name).
UNSUPPORTED = (
    ("joint_blocks.0.", "Stable Diffusion 3"),
    ("double_blocks.0.img_attn", "FLUX"),
    ("edm_mean", "Playground v2.5"),
    ("control_model.", "a ControlNet"),
    ("clip_txt_mapper", "Stable Cascade"),
    ("lora_unet_", "a LoRA"),
    ("lora_te", "a LoRA"),
)


# ----------------------------------------------------------------------------- reading
def read_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, without loading the weights (safetensors header; .ckpt via mmap)."""
    if path.suffix.lower() == ".safetensors":
        return _safetensors_shapes(path)
    return {k: tuple(v.shape) for k, v in read_state_dict(path).items()}


def _safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n <= 0 or n > 100_000_000:
                raise ValueError("bad header length")
            header = json.loads(f.read(n))
    except (OSError, ValueError, struct.error) as exc:
        raise ModelError(
            f"{path}: not a readable .safetensors file ({exc}); is the download complete?"
        ) from None
    return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def read_state_dict(path: Path) -> dict:
    """All tensors of a checkpoint file (a .ckpt's ``state_dict`` unwrapped)."""
    import torch

    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # safetensors/pickle errors: one readable line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{path}: cannot read the checkpoint ({reason}); a .ckpt must hold tensors only "
            "(convert it to .safetensors), and the file must be complete"
        ) from None
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping):
        raise ModelError(f"{path}: the checkpoint holds no state dict")
    return {k: v for k, v in data.items() if hasattr(v, "shape")}


# ----------------------------------------------------------------------------- detection
def detect_family(shapes: Mapping[str, Sequence[int]], path: Path | None = None) -> str:
    """The family name (a key of specs.FAMILIES) of an original-layout checkpoint.

    Raises ModelError naming what the file is when it is a model this engine does not run.
    """
    where = f"{path}: " if path else ""
    for marker, what in UNSUPPORTED:
        if any(marker in k for k in shapes):
            raise ModelError(f"{where}this is {what} checkpoint; {_supported()}")
    if UNET_IN not in shapes:
        raise ModelError(
            f"{where}no UNet weights (model.diffusion_model.*): not a full Stable Diffusion "
            f"checkpoint (a VAE, LoRA or embedding file?); {_supported()}"
        )
    in_channels = shapes[UNET_IN][1]
    if XL_REFINER in shapes and XL_BIG_G not in shapes:
        family, what = None, "the SDXL refiner"
    elif XL_BIG_G in shapes or XL_CLIP_L in shapes:
        family, what = "sdxl", "SDXL"
    elif OPEN_CLIP in shapes:
        family, what = "sd2", "SD-2.x"
    elif CLIP_L in shapes:
        family, what = "sd1", "SD-1.x"
    else:
        raise ModelError(
            f"{where}no text encoder weights (cond_stage_model.* / conditioner.*); "
            "a single file must hold UNet, VAE and text encoder"
        )
    if in_channels != 4:
        kind = {9: "an inpainting", 8: "an instruct-pix2pix"}.get(in_channels, "a")
        raise ModelError(
            f"{where}this is {kind} {what} model ({in_channels} UNet input channels); "
            f"{_supported()}"
        )
    if family is None:
        raise ModelError(f"{where}this is {what} (no base text encoder); {_supported()}")
    if not any(k.startswith(VAE) for k in shapes):
        raise ModelError(f"{where}no VAE weights (first_stage_model.*) in this {what} file")
    if family == "sd2":
        family = _sd2_variant(shapes, path)
    return family


def _sd2_variant(shapes, path: Path | None) -> str:
    if "v_pred" in shapes:
        return "sd2"
    yaml = path.with_suffix(".yaml") if path else None
    if yaml and yaml.is_file():
        text = yaml.read_text(encoding="utf-8", errors="replace")
        is_v = re.search(r"parameterization:\s*['\"]?v['\"]?\s*$", text, re.MULTILINE)
        return "sd2" if is_v else "sd2-base"
    log.info(
        "SD-2.x file without a v_pred key or a .yaml: taken as 768-px v-prediction "
        "(--family sd2-base for 512-px epsilon files)"
    )
    return "sd2"


def _supported() -> str:
    names = ", ".join(FAMILIES[n].label for n in FAMILY_NAMES)
    return f"supported families: {names}"


def family_of_components(unet_config, prediction_type: str, text_config=None) -> str:
    """The family of a diffusers folder: SDXL by its added conditioning, SD-2.x by its OpenCLIP
    text encoder (GELU; CLIP ViT-L uses quick-GELU) or 1024-wide cross-attention, else SD-1.x."""
    if getattr(unet_config, "addition_embed_type", None) == "text_time":
        return "sdxl"
    open_clip = getattr(text_config, "hidden_act", None) == "gelu"
    if open_clip or unet_config.cross_attention_dim == 1024:
        return "sd2" if prediction_type == "v_prediction" else "sd2-base"
    return "sd1"


def check_family(name: str) -> Family:
    if name not in FAMILIES:
        raise ModelError(f"family={name!r}: expected auto or one of {', '.join(FAMILY_NAMES)}")
    return FAMILIES[name]


def check_text_width(shapes: Mapping[str, Sequence[int]], path: Path, family: Family) -> None:
    """The text encoders' combined width must be what the UNet's cross-attention expects."""
    key = next((k for k in shapes if k.startswith(UNET) and k.endswith("attn2.to_k.weight")), None)
    widths = [shapes[k][1] for k in (CLIP_L, OPEN_CLIP, XL_CLIP_L, XL_BIG_G) if k in shapes]
    if key is None or not widths:
        return
    expected, got = shapes[key][1], sum(widths)
    if expected != got:
        raise ModelError(
            f"{path}: wrong text-embedding width: the text encoder(s) give {got} features but "
            f"the UNet's cross-attention expects {expected} (a mixed or broken {family.label} file)"
        )


# ----------------------------------------------------------------------------- loading
def load_single_file(path: Path, family: str = "auto", config_root: Path | None = None, dtype=None):
    """Load an original-layout checkpoint offline. Returns ``(parts, meta)`` for models.py.

    ``config_root`` holds one folder of component configs per family (default:
    resources/models/configs); the tokenizers are built from resources/tokenizers.
    """
    shapes = read_shapes(path)
    detected = detect_family(shapes, path)
    name = detected if family == "auto" else check_family(family).name
    if name.split("-")[0] != detected.split("-")[0]:
        raise ModelError(
            f"{path}: --family {name} was asked for, but the file's keys are those of "
            f"{FAMILIES[detected].label}"
        )
    fam = FAMILIES[name]
    check_text_width(shapes, path, fam)
    root = config_root or resource_path("models", "configs")
    folder = root / fam.config
    parts = _components_from_state(read_state_dict(path), folder, fam, path, dtype)
    meta = {"family": name, "where": str(path), "label": f"{path.name} ({fam.label}, single file)"}
    return parts, meta


def _components_from_state(state: dict, folder: Path, fam: Family, path: Path, dtype=None) -> dict:
    """The components in ``dtype`` (default fp32) as they are built, so a half-precision load
    never holds an fp32 copy of the UNet; the VAE stays fp32 (SD VAEs overflow in fp16)."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    vae_kw = {"config": str(folder), "local_files_only": True, "torch_dtype": torch.float32}
    kw = dict(vae_kw, torch_dtype=dtype or torch.float32)
    steps = [
        ("unet", lambda: UNet2DConditionModel.from_single_file(state, subfolder="unet", **kw)),
        ("vae", lambda: AutoencoderKL.from_single_file(state, subfolder="vae", **vae_kw)),
        (
            "text_encoder",
            lambda: create_diffusers_clip_model_from_ldm(
                CLIPTextModel, state, subfolder="text_encoder", **kw
            ),
        ),
        ("tokenizer", lambda: load_tokenizer(folder / "tokenizer")),
        ("scheduler", lambda: DDPMScheduler.from_pretrained(str(folder), subfolder="scheduler")),
    ]
    if fam.text_encoders == 2:
        steps += [
            (
                "text_encoder_2",
                lambda: create_diffusers_clip_model_from_ldm(
                    CLIPTextModelWithProjection, state, subfolder="text_encoder_2", **kw
                ),
            ),
            ("tokenizer_2", lambda: load_tokenizer(folder / "tokenizer_2")),
        ]
    parts = {}
    for name, load in steps:
        try:
            parts[name] = load()
        except ModelError:
            raise
        except Exception as exc:  # conversion/shape errors: name the component, one line
            text = str(exc).strip()
            reason = text.splitlines()[0].rstrip(". ") if text else type(exc).__name__
            raise ModelError(
                f"{path}: cannot load its {name} as {fam.label}: {reason} (a different family? "
                "try --family)"
            ) from None
    return parts


def load_tokenizer(folder: Path):
    """A CLIPTokenizer from the carried CLIP BPE files (``cds_tokenizer.json``:
    ``{"files": <folder under resources>, "pad_id": N}``).

    The padding id is kept as ``tokenizer.cds_pad_id`` and applied by the engine after
    tokenising: OpenCLIP pads with id 0 (the token "!"), and declaring "!" as the pad token would
    make the tokenizer split every "!" in a prompt out as a special token, unlike CLIP's BPE.
    """
    from transformers import CLIPTokenizer

    spec = json.loads((folder / "cds_tokenizer.json").read_text(encoding="utf-8"))
    tokenizer = CLIPTokenizer.from_pretrained(str(resource_path(*spec["files"].split("/"))))
    tokenizer.cds_pad_id = int(spec["pad_id"])
    return tokenizer
