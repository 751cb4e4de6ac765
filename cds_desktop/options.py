"""Command-line options shared by ``cds-edit`` and the bridge's ``--serve``: which model, on
which device, in which dtype, with which VAE backend and (for single files) which family.

Defaults and choices come from engine/specs.py, the one source the app uses too.
"""

from __future__ import annotations

import argparse
import os

from cds_desktop.engine import specs


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--model --family --device --dtype --vae`` to ``parser``."""
    parser.add_argument(
        "--model",
        default=os.environ.get("CDS_MODEL", specs.DEMO_MODEL),
        help=f"'{specs.DEMO_MODEL}' (embedded demo, default; or $CDS_MODEL), a diffusers folder, "
        "a single .safetensors/.ckpt file (SD-1.x, SD-2.x, SDXL) or a Hugging Face repo id",
    )
    parser.add_argument(
        "--family",
        default="auto",
        choices=specs.FAMILY_CHOICES,
        help="model family (default: detected from the file's keys or the folder's configs); "
        "sd2-base = SD-2.x 512-px epsilon, sd2 = SD-2.x 768-px v-prediction",
    )
    parser.add_argument("--device", default="auto", help=specs.DEVICES_HELP)
    parser.add_argument("--dtype", default="auto", choices=specs.DTYPES)
    parser.add_argument(
        "--vae",
        default=specs.DEFAULT_VAE_BACKEND,
        choices=specs.VAE_BACKENDS,
        help="VAE backend (default auto: onnxruntime on CPU, torch on CUDA)",
    )


def model_kwargs(args: argparse.Namespace) -> dict:
    """The load_model keyword arguments from parsed options."""
    return {
        "device": args.device,
        "dtype": args.dtype,
        "vae_backend": args.vae,
        "family": args.family,
    }
