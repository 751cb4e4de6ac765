"""CDS vs DDS on the shapes demo model: edit success against structure preservation.

    python benchmarks/quality_demo.py [--model shapes-demo] [--scenes 64] [--steps 200]
                                      [--w-cuts 0,3,30,100,300,1000,3000] [--out DIR]

Held-out scenes (seeds never used in training), two edit kinds, whole-image edits (no mask):
* colour: "a {c} {s}" -> "a {c'} {s}" - success: the classifier finds colour c';
  structure: IoU of the object mask before/after; background: PSNR outside both objects.
* shape: "a {c} {s}" -> "a {c} {s'}" - success: the classifier finds shape s'.
For every w_cut (0 = DDS) the same seeds draw the same t, noise and patches. Scenes run as one
batch through the engine's CDSObjective (rows are independent edits; t is shared per step).
Writes results.json, tradeoff.png and grid_*.png to --out, prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from cds_desktop.demo import classify as clf
from cds_desktop.demo.world import COLOURS, HELD_OUT_SEEDS, SHAPES, caption, make_scene
from cds_desktop.engine import CDSObjective, EditSettings
from cds_desktop.engine.models import load_model

log = logging.getLogger("quality_demo")


def edit_pairs(n: int, kind: str, first_seed: int) -> list[tuple]:
    """(scene, source caption, target caption, target attribute) for n held-out seeds."""
    pairs = []
    for i in range(n):
        seed = HELD_OUT_SEEDS[first_seed + i]
        scene = make_scene(seed)
        if kind == "colour":
            others = [c for c in COLOURS if c != scene.colour]
            target = others[seed % len(others)]
            pairs.append((scene, scene.caption, caption(target, scene.shape), target))
        else:
            others = [s for s in SHAPES if s != scene.shape]
            target = others[seed % len(others)]
            pairs.append((scene, scene.caption, caption(scene.colour, target), target))
    return pairs


def to_tensor(images: list[np.ndarray], device) -> torch.Tensor:
    x = torch.from_numpy(np.stack(images)).float().permute(0, 3, 1, 2) / 127.5 - 1
    return x.to(device)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def embed(model, texts: list[str]) -> torch.Tensor:
    return torch.cat([model.encode_prompt(t) for t in texts])


def run_batch(model, pairs, settings: EditSettings, seed: int) -> np.ndarray:
    """Edit all pairs at once with the engine's objective; returns decoded uint8 images."""
    device = model.device
    z_src = model.vae.encode(to_tensor([p[0].image for p in pairs], device)).float()
    z_trg = z_src.clone()
    uncond = model.encode_prompt("")
    cond_src, cond_trg = embed(model, [p[1] for p in pairs]), embed(model, [p[2] for p in pairs])
    g = torch.Generator(device=device).manual_seed(seed)
    lo, hi = settings.t_range
    objective = CDSObjective(model.unet, model.scheduler, settings)
    with objective.session():
        for _ in range(settings.steps):
            t = torch.randint(lo, hi + 1, (), generator=g, device=device)
            noise = torch.randn(z_src.shape, generator=g, device=device)
            z_trg = z_trg - settings.lr * objective.step_gradient(z_src, z_trg, t, noise, uncond, cond_src, cond_trg, g)
    return to_uint8(model.vae.decode(z_trg))


def score(pairs, outputs: np.ndarray, kind: str) -> dict:
    success, iou, bg_psnr, kept = [], [], [], []
    for (scene, _, _, target), out in zip(pairs, outputs, strict=True):
        colour, shape = clf.classify(out)
        success.append((colour if kind == "colour" else shape) == target)
        kept.append((shape == scene.shape) if kind == "colour" else (colour == scene.colour))
        out_mask = clf.object_mask(out)
        iou.append(clf.mask_iou(scene.mask, out_mask))
        background = ~(_dilate(scene.mask) | _dilate(out_mask))
        bg_psnr.append(min(clf.psnr(scene.image, out, background), 60.0))
    return {
        "success": float(np.mean(success)),
        "other_kept": float(np.mean(kept)),
        "iou": float(np.mean(iou)),
        "bg_psnr": float(np.mean(bg_psnr)),
    }


def _dilate(mask: np.ndarray, r: int = 2) -> np.ndarray:
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out |= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out


def recommend(rows: list[dict], floor: float = 0.9) -> dict:
    """Best structure (IoU) among CDS settings with colour-edit success >= floor."""
    ok = [r for r in rows if r["kind"] == "colour" and r["w_cut"] > 0 and r["success"] >= floor]
    if not ok:
        return {"w_cut": None, "reason": f"no CDS setting reached {floor:.0%} colour-edit success"}
    best = max(ok, key=lambda r: (r["iou"], r["success"]))
    return {"w_cut": best["w_cut"], "reason": f"best IoU ({best['iou']:.3f}) with success {best['success']:.0%}"}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, kind in zip(axes, ("colour", "shape"), strict=True):
        sel = [r for r in rows if r["kind"] == kind and r["dds_scale"] == "per_element"]
        ax.plot([r["iou"] for r in sel], [r["success"] for r in sel], "o-")
        for r in sel:
            ax.annotate("DDS" if r["w_cut"] == 0 else f"w_cut {r['w_cut']:g}", (r["iou"], r["success"]), fontsize=8)
        ax.set_xlabel("structure kept (object-mask IoU)")
        ax.set_ylabel("edit success")
        ax.set_title(f"{kind} edits")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def grid(pairs, columns: dict[str, np.ndarray], path: Path, n: int = 8) -> None:
    from PIL import Image, ImageDraw

    names = ["source", *columns]
    cell = 64
    img = Image.new("RGB", (cell * len(names), 14 + cell * n), "white")
    draw = ImageDraw.Draw(img)
    for j, name in enumerate(names):
        draw.text((j * cell + 2, 1), name[:11], fill="black")
    for i in range(min(n, len(pairs))):
        tiles = [pairs[i][0].image] + [columns[k][i] for k in columns]
        for j, tile in enumerate(tiles):
            img.paste(Image.fromarray(tile), (j * cell, 14 + i * cell))
    img.save(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="shapes-demo")
    p.add_argument("--device", default="auto")
    p.add_argument("--scenes", type=int, default=64)
    p.add_argument("--first-seed", type=int, default=5000, help="offset into the held-out seeds")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--w-cuts", default="0,3,30,100,300,1000,3000")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kinds", default="colour,shape", help="edit kinds to run: colour,shape")
    p.add_argument("--no-published", action="store_true", help="skip the DDS row with the published scale")
    p.add_argument("--out", default="benchmarks/out/quality")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, device=args.device, dtype="fp32")
    w_cuts = [float(w) for w in args.w_cuts.split(",")]
    configs = [(w, "per_element") for w in w_cuts] + ([] if args.no_published else [(0.0, "published")])
    rows, outputs = [], {}
    for kind in args.kinds.split(","):
        pairs = edit_pairs(args.scenes, kind, args.first_seed)
        for w_cut, scale in configs:
            s = EditSettings(mode="dds" if w_cut == 0 else "cds", w_cut=w_cut or None, steps=args.steps,
                             guidance_scale=args.guidance, dds_scale=scale)
            start = time.perf_counter()
            images = run_batch(model, pairs, s, args.seed)
            row = {"kind": kind, "w_cut": w_cut, "dds_scale": scale, **score(pairs, images, kind),
                   "seconds": time.perf_counter() - start}
            rows.append(row)
            outputs[(kind, w_cut, scale)] = images
            log.info("%s", row)
        cols = {("DDS" if w == 0 else f"CDS {w:g}"): outputs[(kind, w, "per_element")] for w in w_cuts}
        grid(pairs, cols, out / f"grid_{kind}.png")
    rec = recommend(rows)
    plot(rows, out / "tradeoff.png")
    (out / "results.json").write_text(json.dumps({"args": vars(args), "model": model.label, "rows": rows,
                                                  "recommended": rec}, indent=1))
    print(f"# CDS vs DDS on {model.label}: {args.scenes} held-out scenes per edit kind, {args.steps} steps, "
          f"guidance {args.guidance}, device {model.device}")
    print("| edit | method | w_cut | DDS scale | success | other attribute kept | object IoU | background PSNR dB |")
    print("|---|---|---:|---|---:|---:|---:|---:|")
    for r in rows:
        method = "DDS" if r["w_cut"] == 0 else "CDS"
        print(f"| {r['kind']} | {method} | {r['w_cut']:g} | {r['dds_scale']} | {r['success']:.0%} | "
              f"{r['other_kept']:.0%} | {r['iou']:.3f} | {r['bg_psnr']:.1f} |")
    print(f"recommended w_cut: {rec['w_cut']} ({rec['reason']})")


if __name__ == "__main__":
    main()
