"""Test helper: tiny random-weight models shaped like each family (SD-1.x, SD-2.x, SDXL).

Same component classes, block types, conditioning and text-encoder layouts as the real
families, at widths of 32-80 so that a CDS step takes well under a second. The tokenizers are
the real CLIP BPE the engine carries (resources/tokenizers/clip), so the text encoders have the
real 49408-token vocabulary.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from cds_desktop.engine.families import load_tokenizer
from cds_desktop.engine.resources import resource_path
from cds_desktop.engine.tiny_random import TINY_VAE

SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "clip_sample": False,
    "steps_offset": 1,
}
CONFIG_FOLDER = {"sd1": "sd1", "sd2": "sd2-v", "sd2-base": "sd2-base", "sdxl": "sdxl"}


def _clip(hidden, heads, act, projection=None, with_projection=False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_attention_heads=heads,
        num_hidden_layers=2,
        vocab_size=49408,
        max_position_embeddings=77,
        hidden_act=act,
        projection_dim=projection or hidden,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
    )
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(cfg).eval()


def tiny_family(family: str, seed: int = 0) -> dict:
    """Components (unet, vae, text_encoder[_2], tokenizer[_2], scheduler) for ``family``:
    sd1 | sd2 (v-prediction) | sd2-base | sdxl."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(seed)
    xl = family == "sdxl"
    open_clip = family.startswith("sd2")
    text_width = 80 if xl else 48 if open_clip else 32
    unet_kw = dict(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        cross_attention_dim=text_width,
        attention_head_dim=8,
        norm_num_groups=16,
    )
    if xl:
        unet_kw.update(
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2),
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=48 + 6 * 8,
            use_linear_projection=True,
        )
    else:
        unet_kw.update(
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            use_linear_projection=open_clip,
        )
    unet = UNet2DConditionModel(**unet_kw).eval()
    vae = AutoencoderKL(**TINY_VAE, sample_size=32).eval()
    prediction = "v_prediction" if family == "sd2" else "epsilon"
    parts = {
        "unet": unet,
        "vae": vae,
        "scheduler": DDPMScheduler(**SCHEDULER, prediction_type=prediction),
    }
    configs = resource_path("models", "configs", CONFIG_FOLDER[family])
    parts["tokenizer"] = load_tokenizer(configs / "tokenizer")
    if xl:
        parts["text_encoder"] = _clip(32, 4, "quick_gelu")
        parts["text_encoder_2"] = _clip(48, 4, "gelu", 48, with_projection=True)
        parts["tokenizer_2"] = load_tokenizer(configs / "tokenizer_2")
    elif open_clip:
        parts["text_encoder"] = _clip(48, 4, "gelu")
    else:
        parts["text_encoder"] = _clip(32, 4, "quick_gelu")
    return parts


def save_folder(parts: dict, folder: Path) -> Path:
    """Write ``parts`` as a diffusers folder (model_index.json and one subfolder each)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    xl = "text_encoder_2" in parts
    index = {
        "_class_name": "StableDiffusionXLPipeline" if xl else "StableDiffusionPipeline",
        "_diffusers_version": "0.42.1",
    }
    for name, part in parts.items():
        part.save_pretrained(folder / name)
        lib = "diffusers" if name in ("unet", "vae", "scheduler") else "transformers"
        index[name] = [lib, type(part).__name__]
    if xl:
        index["force_zeros_for_empty_prompt"] = True
    (folder / "model_index.json").write_text(json.dumps(index, indent=1))
    return folder


def save_config_root(parts_by_family: dict, root: Path) -> Path:
    """Write tiny component configs in resources/models/configs' layout (for single files)."""
    for family, parts in parts_by_family.items():
        folder = Path(root) / CONFIG_FOLDER[family]
        for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
            if name in parts:
                (folder / name).mkdir(parents=True, exist_ok=True)
                if name.startswith("text_encoder"):  # transformers config
                    parts[name].config.to_json_file(folder / name / "config.json")
                else:
                    parts[name].save_config(folder / name)
        parts["scheduler"].save_config(folder / "scheduler")
        source = resource_path("models", "configs", CONFIG_FOLDER[family])
        for tok in ("tokenizer", "tokenizer_2"):
            if (source / tok).is_dir():
                (folder / tok).mkdir(parents=True, exist_ok=True)
                (folder / tok / "cds_tokenizer.json").write_bytes(
                    (source / tok / "cds_tokenizer.json").read_bytes()
                )
    return Path(root)
