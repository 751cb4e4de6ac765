"""Model specs, model families and their labels: one torch-free source for the engine, the app's
model picker and settings, the self-test and the command-line parsers.

A model spec (``--model``, the app's picker, the bridge's ``model`` field) is one of:

* ``shapes-demo`` - the embedded demo model (resources/models/shapes-demo; 64x64 shapes only);
* ``tiny-random`` - a tiny randomly initialised pipeline for tests (random weights, no edits);
* a local diffusers folder (with ``model_index.json``);
* a single checkpoint file (``.safetensors`` / ``.ckpt``) in the original (CompVis/SGM) key
  layout: SD-1.x, SD-2.x or SDXL, recognised from its keys (see engine/families.py);
* a Hugging Face repo id (``owner/name``), honouring HF_HOME and HF_HUB_OFFLINE.

Importing this module must stay cheap (no torch, diffusers or Qt): the app and the parsers use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEMO_MODEL = "shapes-demo"
TINY_RANDOM = "tiny-random"
SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")

DEMO_LABEL = "shapes-demo (demo model: 64x64 coloured shapes only)"
RANDOM_LABEL = "tiny-random (RANDOM WEIGHTS: test fixture, edits are noise)"
DEMO_ENTRY = "shapes-demo (demo model)"
RANDOM_ENTRY = "test fixture: random weights (tiny-random)"

DEVICES_HELP = "auto | cpu | cuda | cuda:N | mps"
DTYPES = ("auto", "fp32", "fp16", "bf16")

#: The VAE backend used unless one is chosen (CLI, bridge, app, load_model). "auto" picks per
#: device from measurements (engine/vae AUTO_CHOICE): onnxruntime on CPU, where it was faster
#: than torch in every measured cell (encode 1.46x at 512², decode faster at 512² and 1024²,
#: docs/performance.md "VAE backends"), and torch on CUDA. It falls back to torch, with one
#: logged warning, where onnxruntime is missing or the export fails.
DEFAULT_VAE_BACKEND = "auto"
VAE_BACKENDS = ("auto", "torch", "onnx")

#: The Hugging Face command line that the pinned huggingface_hub installs.
HF_CLI = "hf"


@dataclass(frozen=True)
class Family:
    """A model family this engine runs, with its per-family edit defaults."""

    name: str
    label: str
    #: folder under resources/models/configs with its component configs (single files)
    config: str
    working_size: int
    guidance_scale: float
    w_cut: float
    prediction_type: str
    text_encoders: int = 1

    def defaults(self) -> dict:
        """The EditSettings knobs this family sets (those a user left unset)."""
        return {
            "working_size": self.working_size,
            "guidance_scale": self.guidance_scale,
            "w_cut": self.w_cut,
        }


#: CDS's published settings are for SD-1.x (guidance 7.5, w_cut 3). SD-2.x keeps them. SDXL:
#: guidance 5.0 (the SDXL pipelines' default); its up blocks carry 36 self-attention layers
#: against SD-1.x's 9 and the contrastive loss is a sum over layers, so w_cut = 3 * 9 / 36 keeps
#: the contrastive term's total weight where the published setting puts it.
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("sd1", "SD-1.x", "sd1", 512, 7.5, 3.0, "epsilon"),
        Family("sd2", "SD-2.x (768 px, v-prediction)", "sd2-v", 768, 7.5, 3.0, "v_prediction"),
        Family("sd2-base", "SD-2.x base (512 px, epsilon)", "sd2-base", 512, 7.5, 3.0, "epsilon"),
        Family("sdxl", "SDXL", "sdxl", 1024, 5.0, 0.75, "epsilon", text_encoders=2),
    )
}
FAMILY_NAMES = tuple(FAMILIES)
#: What ``--family`` accepts: ``auto`` detects the family from the file's keys or folder configs.
FAMILY_CHOICES = ("auto", *FAMILY_NAMES)


def is_random(spec: str) -> bool:
    return spec == TINY_RANDOM


def looks_like_path(spec: str) -> bool:
    """True when ``spec`` reads as a file-system path rather than a Hub repo id.

    An id has exactly one ``/``, no leading ``.``, ``/`` or ``~``, no backslash or drive letter
    and no checkpoint suffix; and ``models/sd15`` is a path (not an id) when it exists or when
    ``models`` is a folder here.
    """
    if spec.startswith((".", "/", "~")) or "\\" in spec or spec[1:3] in (":\\", ":/"):
        return True
    if Path(spec).suffix.lower() in CHECKPOINT_SUFFIXES:
        return True
    if spec.count("/") != 1 or spec.endswith("/"):
        return True
    first = spec.split("/")[0]
    return Path(os.path.expanduser(spec)).exists() or Path(first).is_dir()


def kind_of(spec: str) -> str:
    """'demo' | 'random' | 'file' | 'folder' | 'hub', by the spec's shape (nothing loaded)."""
    if spec == DEMO_MODEL:
        return "demo"
    if spec == TINY_RANDOM:
        return "random"
    if Path(spec).suffix.lower() in CHECKPOINT_SUFFIXES:
        return "file"
    if looks_like_path(spec):
        return "folder"
    return "hub"


def label(spec: str) -> str:
    """What window titles, status lines and the bridge say about the model."""
    kind = kind_of(spec)
    if kind == "demo":
        return DEMO_LABEL
    if kind == "random":
        return RANDOM_LABEL
    if kind in ("file", "folder"):
        return f"{Path(spec).name or spec} ({kind}: {spec})"
    return f"{spec} (Hugging Face)"


def entry_text(spec: str) -> str:
    """The model picker's text for a spec."""
    kind = kind_of(spec)
    if kind == "demo":
        return DEMO_ENTRY
    if kind == "random":
        return RANDOM_ENTRY
    if kind == "file":
        return f"file: {Path(spec).name}"
    if kind == "folder":
        return f"folder: {Path(spec).name or spec}"
    return f"hub: {spec}"


def download_hint(repo: str = SD15_REPO) -> str:
    """The command that puts ``repo`` into the Hugging Face cache."""
    return f"`{HF_CLI} download {repo}`"
