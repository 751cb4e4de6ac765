"""Test helper: write diffusers components as one checkpoint in the original (CompVis / SGM) key
layout, the layout of the single files people download.

The mapping is the inverse of diffusers' own single-file conversion
(diffusers.loaders.single_file_utils: convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint,
convert_ldm_clip_checkpoint, convert_open_clip_checkpoint), built from its mapping tables; the
tests check that diffusers' conversion of what this writes gives back every tensor exactly.
"""

from __future__ import annotations

import re

import torch
from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING as MAP

UNET = "model.diffusion_model."
VAE = "first_stage_model."
CLIP_L_PREFIX = {
    "sd1": "cond_stage_model.transformer.",
    "sdxl": "conditioner.embedders.0.transformer.",
}
OPEN_CLIP_PREFIX = {"sd2": "cond_stage_model.model.", "sdxl": "conditioner.embedders.1.model."}

_RESNET = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
)


def _resnet(rest: str) -> str:
    head, _, tail = rest.partition(".")
    return dict(_RESNET).get(head, head) + "." + tail


def unet_to_ldm(sd: dict, config) -> dict:
    lpb = config["layers_per_block"]
    out = {}
    tables = [MAP["unet"]["layers"]]
    if config.get("addition_embed_type") == "text_time":
        tables.append(MAP["unet"]["addition_embed_type"])
    for table in tables:
        for dk, lk in table.items():
            if dk in sd:
                out[lk] = sd[dk]
    up_has_attn = ["CrossAttn" in t for t in config["up_block_types"]]
    for k, v in sd.items():
        if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", k):
            b, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
            i = 1 + b * (lpb + 1) + layer
            out[
                f"input_blocks.{i}.{0 if kind == 'resnets' else 1}.{_resnet(rest) if kind == 'resnets' else rest}"
            ] = v
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)", k):
            out[f"input_blocks.{(int(m[1]) + 1) * (lpb + 1)}.0.op.{m[2]}"] = v
        elif m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", k):
            out[f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"] = v
        elif m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", k):
            out[f"middle_block.1.{m[1]}"] = v
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", k):
            b, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
            i = b * (lpb + 1) + layer
            out[
                f"output_blocks.{i}.{0 if kind == 'resnets' else 1}.{_resnet(rest) if kind == 'resnets' else rest}"
            ] = v
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)", k):
            b = int(m[1])
            slot = 2 if up_has_attn[b] else 1
            out[f"output_blocks.{b * (lpb + 1) + lpb}.{slot}.conv.{m[2]}"] = v
    return {UNET + k: v for k, v in out.items()}


def vae_to_ldm(sd: dict, config) -> dict:
    n_up = len(config["up_block_types"])
    out = {lk: sd[dk] for dk, lk in MAP["vae"].items() if dk in sd}
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    for k, v in sd.items():
        if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", k):
            out[
                f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
            ] = v
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)", k):
            out[f"encoder.down.{m[1]}.downsample.conv.{m[2]}"] = v
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", k):
            out[
                f"decoder.up.{n_up - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
            ] = v
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)", k):
            out[f"decoder.up.{n_up - 1 - int(m[1])}.upsample.conv.{m[2]}"] = v
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", k):
            out[
                f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
            ] = v
        elif m := re.fullmatch(
            r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", k
        ):
            name = attn[m[2]]
            value = v[:, :, None, None] if m[3] == "weight" and v.dim() == 2 else v  # 1x1 convs
            out[f"{m[1]}.mid.attn_1.{name}.{m[3]}"] = value
    return {VAE + k: v for k, v in out.items()}


def clip_to_ldm(sd: dict, prefix: str) -> dict:
    """HF CLIPTextModel state dict -> ``<prefix>text_model.*`` (as in SD-1.x / SDXL files)."""
    out = {}
    for k, v in sd.items():
        key = k if k.startswith("text_model.") else "text_model." + k
        out[prefix + key] = v
    return out


def open_clip_to_ldm(sd: dict, prefix: str, extra_layer: bool = False) -> dict:
    """HF CLIPTextModel(WithProjection) -> OpenCLIP names (fused q/k/v ``in_proj``).

    ``extra_layer`` appends one more (random) residual block, as the SD-2.x files carry the full
    24-layer OpenCLIP ViT-H of which diffusers keeps 23.
    """
    sd = {
        (k if k.startswith(("text_model.", "text_projection")) else "text_model." + k): v
        for k, v in sd.items()
    }
    out = {}
    for dk, lk in MAP["openclip"]["layers"].items():
        if dk in sd:
            out[lk] = sd[dk].T.contiguous() if lk == "text_projection" else sd[dk]
    if "text_projection" not in out:  # SD-2.x: unused by diffusers, present in the files
        width = sd["text_model.final_layer_norm.weight"].shape[0]
        out["text_projection"] = torch.zeros(
            width, width, dtype=sd["text_model.final_layer_norm.weight"].dtype
        )
    layers = sorted(
        {int(m[1]) for k in sd if (m := re.match(r"text_model\.encoder\.layers\.(\d+)\.", k))}
    )
    names = {
        "layer_norm1": "ln_1",
        "layer_norm2": "ln_2",
        "mlp.fc1": "mlp.c_fc",
        "mlp.fc2": "mlp.c_proj",
        "self_attn.out_proj": "attn.out_proj",
    }
    for i in layers:
        src = f"text_model.encoder.layers.{i}."
        dst = f"transformer.resblocks.{i}."
        for wb in ("weight", "bias"):
            out[dst + f"attn.in_proj_{wb}"] = torch.cat(
                [sd[src + f"self_attn.{q}_proj.{wb}"] for q in "qkv"]
            )
            for a, b in names.items():
                out[dst + f"{b}.{wb}"] = sd[src + f"{a}.{wb}"]
    if extra_layer:
        last = f"transformer.resblocks.{layers[-1]}."
        nxt = f"transformer.resblocks.{layers[-1] + 1}."
        for k in [k for k in out if k.startswith(last)]:
            out[nxt + k[len(last) :]] = (
                torch.randn_like(out[k])
                if out[k].is_floating_point() and out[k].device.type != "meta"
                else out[k]
            )
    return {prefix + k: v for k, v in out.items()}


def to_single_file(parts: dict, family: str, extra_open_clip_layer: bool = False) -> dict:
    """diffusers components (unet, vae, text_encoder[, text_encoder_2]) -> one original-layout
    state dict. ``family``: sd1 | sd2 | sdxl (the text encoders' layout)."""
    state = {}
    state.update(unet_to_ldm(parts["unet"].state_dict(), dict(parts["unet"].config)))
    state.update(vae_to_ldm(parts["vae"].state_dict(), dict(parts["vae"].config)))
    te = parts["text_encoder"].state_dict()
    if family == "sd1":
        state.update(clip_to_ldm(te, CLIP_L_PREFIX["sd1"]))
    elif family == "sd2":
        state.update(open_clip_to_ldm(te, OPEN_CLIP_PREFIX["sd2"], extra_open_clip_layer))
    else:
        state.update(clip_to_ldm(te, CLIP_L_PREFIX["sdxl"]))
        state.update(
            open_clip_to_ldm(parts["text_encoder_2"].state_dict(), OPEN_CLIP_PREFIX["sdxl"])
        )
    return state
