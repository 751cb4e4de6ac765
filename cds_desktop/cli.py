"""cds-edit: CDS image editing from the shell.

    cds-edit IMAGE --source "a red circle" --target "a blue circle" [--target ...]
             [--mask M.png] [--mode cds|dds] [--steps N] [--w-cut X] [--seed S]
             [--model M] [--device D] [-o OUT]

One output per target prompt, written atomically (temp file + rename). Several --target
prompts run as one shared edit (the source branch is computed once per step; each output
equals that target edited alone with the same seed) with one progress bar. User mistakes give one
`cds-edit: error: ...` line and exit status 2; nothing partial is left behind.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from cds_desktop.engine import EditCancelled, EditError, EditSettings, drain, run_edits
from cds_desktop.engine.models import load_model
from cds_desktop.fileio import atomic_write
from cds_desktop.logs import setup_logging
from cds_desktop.options import add_model_options, model_kwargs

log = logging.getLogger("cds_desktop.cli")
OUTPUT_FORMATS = {
    ".png": "PNG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cds-edit",
        description="Edit an image with Contrastive Denoising Score (CDS) on a Stable Diffusion model (SD-1.x, SD-2.x, SDXL).",
    )
    p.add_argument("image", help="input image (PNG, JPEG, WebP, TIFF)")
    p.add_argument("--source", required=True, help='prompt describing the input, e.g. "a cat"')
    p.add_argument(
        "--target",
        required=True,
        action="append",
        help="target prompt (repeatable: one output each)",
    )
    p.add_argument("--mask", help="mask image, same size as IMAGE; white = edit, black = keep")
    p.add_argument("-o", "--output", help="output file (default: out/<image>-<target>.png)")
    add_model_options(p)
    p.add_argument("--mode", default="cds", choices=["cds", "dds"], help="cds (default) or dds (baseline, w_cut=0)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument(
        "--w-cut",
        type=float,
        default=None,
        help="CUT loss weight (default: the model's recommendation; 3 for SD)",
    )
    p.add_argument("--w-dds", type=float, default=1.0)
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default: the model family's, 7.5 for SD-1.x/2.x, 5 for SDXL)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--working-size",
        type=int,
        default=None,
        help="long side the model works at (default: the model's native size)",
    )
    p.add_argument("--dds-scale", default="per_element", choices=["per_element", "published"])
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


class CliError(Exception):
    pass


def slug(text: str, limit: int = 40) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "-", text.strip()).strip("-").lower()
    return (s or "edit")[:limit]


def output_paths(args) -> list[Path]:
    stem = Path(args.image).stem
    if args.output is None:
        return [Path("out") / f"{stem}-{slug(t)}.png" for t in args.target]
    out = Path(args.output)
    if out.suffix.lower() not in OUTPUT_FORMATS:
        raise CliError(
            f"output {out}: unsupported extension; use one of {', '.join(OUTPUT_FORMATS)}"
        )
    if len(args.target) == 1:
        return [out]
    return [
        out.with_name(f"{out.stem}-{i + 1}-{slug(t)}{out.suffix}")
        for i, t in enumerate(args.target)
    ]


def read_image(path: str, what: str):
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise CliError(f"{what} {p}: file not found")
    try:
        with Image.open(p) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CliError(f"{what} {p}: cannot read it as an image ({exc})") from None


def write_image_atomic(array, path: Path, keep_alpha: bool) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = OUTPUT_FORMATS[path.suffix.lower()]
    img = Image.fromarray(array, "RGBA")
    if not keep_alpha or fmt == "JPEG":
        img = img.convert("RGB")
    atomic_write(path, lambda f: img.save(f, format=fmt))


def settings_from_args(args) -> EditSettings:
    return EditSettings(
        mode=args.mode,
        steps=args.steps,
        lr=args.lr,
        w_cut=args.w_cut,
        w_dds=args.w_dds,
        **({} if args.guidance is None else {"guidance_scale": args.guidance}),
        seed=args.seed,
        working_size=args.working_size,
        dds_scale=args.dds_scale,
    )


def unset_model_defaults(args) -> tuple[str, ...]:
    """The model-dependent knobs (settings.MODEL_DEFAULTS) the user did not give."""
    return () if args.guidance is not None else ("guidance_scale",)


class OutputErrors(Exception):
    """Some outputs could not be written (each was already reported in one line)."""


def run(args) -> list[Path]:
    """Edit once per target and write each output; returns the paths written.

    A target whose output cannot be written (no permission, disk full, a file held open on
    Windows) is reported in one line and the remaining targets still run; OutputErrors is
    raised at the end if that happened.
    """
    settings = settings_from_args(args)  # validate before the slow model load
    image = read_image(args.image, "image")
    keep_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    mask = read_image(args.mask, "mask") if args.mask else None
    if mask is not None and mask.size != image.size:
        raise CliError(
            f"mask size {mask.size[0]}x{mask.size[1]} does not match the image size {image.size[0]}x{image.size[1]}"
        )
    outputs = output_paths(args)
    for t in args.target:
        if not t.strip():
            raise EditError("the target prompt is empty: describe the edited image")
    model = load_model(args.model, **model_kwargs(args))
    settings = settings.with_model_defaults(model.recommended, unset_model_defaults(args))
    say(args, f"model: {model.label} on {model.device} ({str(model.dtype).replace('torch.', '')})")
    if model.is_random:
        say(args, "WARNING: tiny-random has RANDOM WEIGHTS (a test fixture): its edits are noise.")
    results = edit_with_progress(model, image, mask, args, args.target, settings)
    written, failed = [], 0
    for target, out, result in zip(args.target, outputs, results, strict=True):
        try:
            write_image_atomic(result.image, out, keep_alpha)
        except OSError as exc:
            failed += 1
            print(
                f"cds-edit: error: cannot write {out} ({target!r}): {exc.strerror or exc}",
                file=sys.stderr,
            )
            continue
        written.append(out)
        say(
            args,
            f"wrote {out}  ({args.source!r} -> {target!r}, {result.steps} steps, {result.elapsed:.1f} s)",
        )
    if failed:
        raise OutputErrors(f"{failed} of {len(outputs)} output(s) could not be written")
    return written


def edit_with_progress(model, image, mask, args, targets, settings):
    """One shared run for every target (the source branch is computed once per step)."""
    from tqdm import tqdm

    gen = run_edits(model, image, args.source, targets, mask=mask, settings=settings)
    desc = targets[0][:30] if len(targets) == 1 else f"{len(targets)} targets"
    with tqdm(
        total=settings.steps, desc=desc, unit="step", disable=args.quiet, file=sys.stderr
    ) as bar:
        return drain(gen, lambda _progress: bar.update(1))


def say(args, text: str) -> None:
    if not args.quiet:
        print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (CliError, EditError) as exc:
        print(f"cds-edit: error: {exc}", file=sys.stderr)
        return 2
    except OutputErrors:
        return 1
    except EditCancelled:
        print("cds-edit: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("cds-edit: interrupted; no output written for the unfinished edit", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
