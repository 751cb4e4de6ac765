"""Single-file checkpoints: family detection on the real key layouts, and exact offline loading."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers.loaders.single_file_utils import (
    convert_ldm_unet_checkpoint,
    infer_diffusers_model_type,
)
from ldm_layout import to_single_file
from model_fixtures import save_config_root, tiny_family
from safetensors.torch import save_file

from cds_desktop.engine.errors import ModelError
from cds_desktop.engine.families import detect_family, load_single_file, read_shapes
from cds_desktop.engine.resources import resource_path

CONFIGS = resource_path("models", "configs")


def full_size_parts(config: str) -> dict:
    """The real architectures, from the carried configs, on the meta device (no memory)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = CONFIGS / config
    parts = {}
    with torch.device("meta"):
        parts["unet"] = UNet2DConditionModel.from_config(
            UNet2DConditionModel.load_config(folder / "unet")
        )
        parts["vae"] = AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae"))
        for name, cls in (
            ("text_encoder", CLIPTextModel),
            ("text_encoder_2", CLIPTextModelWithProjection),
        ):
            if (folder / name).is_dir():
                parts[name] = cls(CLIPTextConfig.from_pretrained(folder / name))
    return parts


@pytest.fixture(scope="module")
def real_layouts():
    """Original-layout key sets (name -> meta tensor) of full-size SD-1.5, SD-2.1 and SDXL files.
    SD-2.x files carry all 24 OpenCLIP layers (diffusers uses 23)."""
    return {
        "sd1": (to_single_file(full_size_parts("sd1"), "sd1"), "v1"),
        "sd2": (to_single_file(full_size_parts("sd2-v"), "sd2", extra_open_clip_layer=True), "v2"),
        "sdxl": (to_single_file(full_size_parts("sdxl"), "sdxl"), "xl_base"),
    }


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_family_detected_from_real_key_layout(real_layouts, family):
    state, diffusers_type = real_layouts[family]
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    # the key set is what diffusers itself recognises as that family...
    assert infer_diffusers_model_type(state) == diffusers_type
    # ...and converts back to every UNet parameter of the carried config, shape for shape
    config = dict(
        full_size_parts({"sd1": "sd1", "sd2": "sd2-v", "sdxl": "sdxl"}[family])["unet"].config
    )
    unet = full_size_parts({"sd1": "sd1", "sd2": "sd2-v", "sdxl": "sdxl"}[family])["unet"]
    converted = convert_ldm_unet_checkpoint(state, config)
    assert {k: tuple(v.shape) for k, v in converted.items()} == {
        k: tuple(v.shape) for k, v in unet.state_dict().items()
    }
    assert detect_family(shapes) == family


def _shapes(real_layouts, family):
    return {k: tuple(v.shape) for k, v in real_layouts[family][0].items()}


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda s: s.update({"model.diffusion_model.input_blocks.0.0.weight": (320, 9, 3, 3)}),
            "inpainting SD-1.x",
        ),
        (
            lambda s: [s.pop(k) for k in list(s) if k.startswith("first_stage_model.")],
            "no VAE weights",
        ),
        (
            lambda s: [s.pop(k) for k in list(s) if k.startswith("model.diffusion_model.")],
            "no UNet weights",
        ),
        (
            lambda s: [s.pop(k) for k in list(s) if k.startswith("cond_stage_model.")],
            "no text encoder",
        ),
        (
            lambda s: s.update(
                {"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight": (1, 1)}
            ),
            "Stable Diffusion 3",
        ),
    ],
)
def test_unsupported_or_incomplete_files_are_named(real_layouts, change, message):
    shapes = _shapes(real_layouts, "sd1")
    change(shapes)
    with pytest.raises(ModelError, match=message) as err:
        detect_family(shapes)
    text = str(err.value)
    assert "\n" not in text and not text.endswith("..")


def test_sdxl_refiner_is_detected_and_refused(real_layouts):
    # the refiner has only the bigG encoder, as embedders.0
    shapes = {
        k.replace("conditioner.embedders.1.", "conditioner.embedders.0."): v
        for k, v in _shapes(real_layouts, "sdxl").items()
        if not k.startswith("conditioner.embedders.0.")
    }
    with pytest.raises(ModelError, match="SDXL refiner"):
        detect_family(shapes)


def test_sd2_prediction_type_from_v_pred_key_or_yaml(real_layouts, tmp_path):
    shapes = _shapes(real_layouts, "sd2")
    path = tmp_path / "model.safetensors"
    assert detect_family(shapes, path) == "sd2"  # no hints: the 768-px v release
    assert detect_family({**shapes, "v_pred": ()}, path) == "sd2"
    path.with_suffix(".yaml").write_text('model:\n  params:\n    parameterization: "v"\n')
    assert detect_family(shapes, path) == "sd2"
    path.with_suffix(".yaml").write_text("model:\n  params:\n    linear_start: 0.00085\n")
    assert detect_family(shapes, path) == "sd2-base"


def test_safetensors_header_read_without_loading(tmp_path):
    path = tmp_path / "x.safetensors"
    save_file({"a": torch.zeros(2, 3), "b": torch.zeros(4)}, str(path))
    assert read_shapes(path) == {"a": (2, 3), "b": (4,)}
    (tmp_path / "cut.safetensors").write_bytes(path.read_bytes()[:5])
    with pytest.raises(ModelError, match="not a readable .safetensors file"):
        read_shapes(tmp_path / "cut.safetensors")


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("single")
    fams = {f: tiny_family(f) for f in ("sd1", "sd2", "sdxl")}
    root = save_config_root({**fams, "sd2-base": tiny_family("sd2-base")}, tmp / "configs")
    files = {}
    for f, parts in fams.items():
        files[f] = tmp / f"{f}.safetensors"
        save_file({k: v.contiguous() for k, v in to_single_file(parts, f).items()}, str(files[f]))
    ckpt = tmp / "sd1.ckpt"
    torch.save({"state_dict": to_single_file(fams["sd1"], "sd1"), "global_step": 1}, ckpt)
    files["sd1-ckpt"] = ckpt
    return fams, root, files


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl", "sd1-ckpt"])
def test_single_file_loads_every_tensor_exactly(tiny_files, family):
    fams, root, files = tiny_files
    parts, meta = load_single_file(files[family], "auto", config_root=root)
    base = family.split("-")[0]
    assert meta["family"] == base
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if name not in fams[base]:
            continue
        want, got = fams[base][name].state_dict(), parts[name].state_dict()
        assert set(want) == set(got), name
        bad = [k for k in want if not torch.equal(want[k], got[k])]
        assert not bad, f"{name}: {bad[:3]}"
    ids = parts["tokenizer"]("a photo of a cat").input_ids
    assert ids[0] == 49406 and ids[-1] == 49407 and len(ids) == 7


def test_half_precision_components_are_built_in_half_precision(tiny_files):
    """An fp16 load builds the UNet and text encoders in fp16 (no fp32 copy of them on the way);
    the VAE stays fp32 (SD VAEs overflow in fp16)."""
    _, root, files = tiny_files
    parts, _ = load_single_file(files["sdxl"], "auto", config_root=root, dtype=torch.float16)
    for name in ("unet", "text_encoder", "text_encoder_2"):
        assert {p.dtype for p in parts[name].parameters()} == {torch.float16}, name
    assert {p.dtype for p in parts["vae"].parameters()} == {torch.float32}


def test_forced_family_must_match_the_keys(tiny_files):
    _, root, files = tiny_files
    parts, meta = load_single_file(files["sd2"], "sd2-base", config_root=root)
    assert meta["family"] == "sd2-base" and parts["scheduler"].config.prediction_type == "epsilon"
    with pytest.raises(ModelError, match="--family sdxl was asked for"):
        load_single_file(files["sd1"], "sdxl", config_root=root)


def test_carried_configs_match_the_families():
    from cds_desktop.engine.specs import FAMILIES

    for fam in FAMILIES.values():
        folder = CONFIGS / fam.config
        sched = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
        unet = json.loads((folder / "unet" / "config.json").read_text())
        vae = json.loads((folder / "vae" / "config.json").read_text())
        assert sched["prediction_type"] == fam.prediction_type, fam.name
        assert unet["sample_size"] * 2 ** (len(vae["block_out_channels"]) - 1) == fam.working_size
        assert (folder / "text_encoder_2").is_dir() == (fam.text_encoders == 2)
