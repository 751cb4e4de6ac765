"""CDS vs DDS on the shapes demo model: w_cut chosen on a validation split, reported on a test split.

    nice python benchmarks/quality_demo.py [--val-scenes 10] [--test-scenes 12]
                                           [--w-cuts 15,30,60] [--steps 200] [--out DIR]

Scenes are held out from training (``HELD_OUT_SEEDS``; the training script never draws them)
and come in two families:

* ``world``: the training renderer (anti-aliased shapes, sizes 18-40 px, >= 2 px from the
  border, the four training background tints);
* ``hard``: a renderer unlike training: hard edges without anti-aliasing, the object's box
  0.5-1.5 px from one border, sizes 12-17 or 41-48 px, background tints and gradients
  outside the training ranges. Scenes whose *source* the classifier misreads are redrawn (the
  count is reported).

Each scene is edited twice, colour ("a red circle" -> "a blue circle") and shape ("a red
circle" -> "a red square"), as a whole-image edit and as a masked edit (the mask is the
object's bounding box grown by 3 px; the engine crops, edits and composites as ``run_edit``
does). All metrics are computed from pixels: the classifier finds the object in the source
and in the output (``cds_desktop/demo/classify.py``), never from the generator's masks.

* success: the classifier finds the target colour/shape in the output;
* other kept: the other attribute is unchanged;
* IoU: object mask of the output vs the source (structure kept);
* bg PSNR: outside both object masks (dilated by 2 px), capped at 60 dB.

Rows give the mean with a 95 % bootstrap interval over scenes; CDS-vs-DDS compares the same
scenes with the same seeds (the same t and noise each step) as the per-scene win rate (CDS IoU
higher; ties count half) and the mean paired IoU difference, both with bootstrap intervals.

Phases: ``val`` runs DDS and CDS for every ``--w-cuts`` value on the validation split
(whole-image edits) and picks the recommended w_cut: the best mean IoU among w_cuts whose
success is at least DDS's minus 5 points. ``test`` runs DDS and CDS at that w_cut (or
``--w-cut``) on the test split, whole-image and masked. Writes results.json, tradeoff.png and
grid_*.png to --out and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cds_desktop.demo import classify as clf
from cds_desktop.demo.world import (
    COLOURS,
    HELD_OUT_SEEDS,
    PALETTE,
    SHAPES,
    Sprite,
    bbox_height,
    caption,
    make_scene,
)
from cds_desktop.engine import CDSObjective, EditSettings, images
from cds_desktop.engine.cds import Draws
from cds_desktop.engine.models import load_model

log = logging.getLogger("quality_demo")

#: first held-out seed of each (family, split); disjoint ranges
SEED_BASE = {("world", "val"): 5000, ("world", "test"): 6000, ("hard", "val"): 7000, ("hard", "test"): 8000}
HARD_TINTS = ((252, 226, 232), (222, 244, 226), (250, 247, 212), (212, 214, 220))
MASK_GROW = 3
BOOTSTRAP = 2000


@dataclass(frozen=True)
class Case:
    family: str
    seed: int
    image: np.ndarray  # (64, 64, 3) uint8
    colour: str
    shape: str
    source_mask: np.ndarray  # the classifier's object mask of the source


# ----------------------------------------------------------------------------- scenes
def hard_scene(seed: int, size: int = 64) -> tuple[np.ndarray, str, str]:
    """A scene unlike the training renderer (see the module docstring)."""
    rng = np.random.default_rng(seed)
    colour, shape = COLOURS[rng.integers(len(COLOURS))], SHAPES[rng.integers(len(SHAPES))]
    extent = rng.uniform(12, 17) if rng.uniform() < 0.5 else rng.uniform(41, 48)
    half_w, half_h = extent / 2, bbox_height(shape, extent) / 2
    gap = rng.uniform(0.5, 1.5)
    cx, cy = rng.uniform(gap + half_w, size - gap - half_w), rng.uniform(gap + half_h, size - gap - half_h)
    side = rng.integers(4)  # push the box to one border
    if side == 0:
        cx = gap + half_w
    elif side == 1:
        cx = size - gap - half_w
    elif side == 2:
        cy = gap + half_h
    else:
        cy = size - gap - half_h
    jitter = rng.integers(-10, 11, size=3)
    rgb = np.clip(np.array(PALETTE[colour]) + jitter, 0, 255).astype(np.float32)
    sprite = Sprite(colour, shape, float(cx), float(cy), float(extent))
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    x, y = xs - sprite.cx, ys - sprite.cy
    if shape == "circle":
        inside = x * x + y * y <= (extent / 2) ** 2
    elif shape == "square":
        inside = (np.abs(x) <= extent / 2) & (np.abs(y) <= extent / 2)
    else:
        t = y + sprite.height / 2
        inside = (t >= 0) & (t <= sprite.height) & (np.abs(x) * math.sqrt(3) <= t)
    tint = np.array(HARD_TINTS[rng.integers(len(HARD_TINTS))], np.float32) + rng.integers(-4, 5, 3)
    angle, amplitude = rng.uniform(0, 2 * math.pi), rng.uniform(12, 24)
    ramp = (math.cos(angle) * (xs / size - 0.5) + math.sin(angle) * (ys / size - 0.5))[..., None]
    image = tint + amplitude * ramp
    image = np.where(inside[..., None], rgb, image)
    image = image + rng.normal(0, rng.uniform(0.5, 2.0), image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), colour, shape


def cases(family: str, split: str, n: int) -> tuple[list[Case], int]:
    """n scenes the classifier reads correctly, and how many were redrawn."""
    out, redrawn, i = [], 0, 0
    while len(out) < n:
        seed = HELD_OUT_SEEDS[SEED_BASE[(family, split)] + i]
        i += 1
        if family == "world":
            scene = make_scene(seed)
            image, colour, shape = scene.image, scene.colour, scene.shape
        else:
            image, colour, shape = hard_scene(seed)
        if clf.classify(image) != (colour, shape):
            redrawn += 1
            continue
        out.append(Case(family, seed, image, colour, shape, clf.object_mask(image)))
    return out, redrawn


def target_of(case: Case, kind: str) -> tuple[str, str]:
    """(target caption, target attribute) of a colour or shape edit."""
    if kind == "colour":
        others = [c for c in COLOURS if c != case.colour]
        t = others[case.seed % len(others)]
        return caption(t, case.shape), t
    others = [s for s in SHAPES if s != case.shape]
    t = others[case.seed % len(others)]
    return caption(case.colour, t), t


def edit_mask(case: Case) -> np.ndarray:
    ys, xs = np.nonzero(case.source_mask)
    m = np.zeros(case.source_mask.shape, np.uint8)
    m[max(0, ys.min() - MASK_GROW) : ys.max() + 1 + MASK_GROW, max(0, xs.min() - MASK_GROW) : xs.max() + 1 + MASK_GROW] = 255
    return m


# ----------------------------------------------------------------------------- editing
def run_cases(model, batch: list[Case], kind: str, masked: bool, settings: EditSettings, seed: int) -> list[np.ndarray]:
    """Edit every case (rows of one batch per working size) with the engine's objective, crop,
    resize and composite as run_edit does; returns the composited RGB outputs in order."""
    settings = settings.resolved(working_size=model.native_size)
    plans = []
    for case in batch:
        rgba = images.to_rgba(case.image)
        mask = images.to_mask(edit_mask(case), rgba.shape[:2]) if masked else None
        region = images.plan_region(rgba.shape[:2], mask, settings.working_size, model.size_multiple, settings.crop_margin)
        plans.append((rgba, mask, region))
    outputs: list[np.ndarray | None] = [None] * len(batch)
    groups: dict[tuple, list[int]] = {}
    for i, (_, _, region) in enumerate(plans):
        groups.setdefault(region.work_size, []).append(i)
    uncond = model.encode_prompt("")
    for rows in groups.values():
        x = torch.cat([images.region_tensor(plans[i][0], plans[i][2]) for i in rows]).to(model.device)
        z_src = model.vae.encode(x).float()
        z_trg = z_src.clone()
        cond_src = torch.cat([model.encode_prompt(caption(batch[i].colour, batch[i].shape)) for i in rows])
        cond_trg = torch.cat([model.encode_prompt(target_of(batch[i], kind)[0]) for i in rows])
        draws = Draws(seed)
        objective = CDSObjective(model.unet, model.scheduler, settings)
        with objective.session():
            for _ in range(settings.steps):
                t, noise = draws.step(settings.t_range, z_src.shape, model.device)
                grad = objective.step_gradient(z_src, z_trg, t, noise, uncond, cond_src, cond_trg, draws.patches)
                z_trg = z_trg - settings.lr * grad
        with torch.no_grad():
            decoded = model.vae.decode(z_trg)
        for j, i in enumerate(rows):
            rgba, mask, region = plans[i]
            edited = images.tensor_to_rgb(decoded[j : j + 1])
            outputs[i] = images.composite(rgba, edited, region, mask, settings.feather)[..., :3]
    return outputs


# ----------------------------------------------------------------------------- metrics
def dilate(mask: np.ndarray, r: int = 2) -> np.ndarray:
    out = mask.copy()
    padded = np.pad(mask, r)
    h, w = mask.shape
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out |= padded[dy : dy + h, dx : dx + w]
    return out


def scene_scores(case: Case, out: np.ndarray, kind: str) -> dict:
    colour, shape = clf.classify(out)
    target = target_of(case, kind)[1]
    out_mask = clf.object_mask(out)
    background = ~(dilate(case.source_mask) | dilate(out_mask))
    return {
        "success": float((colour if kind == "colour" else shape) == target),
        "other_kept": float((shape == case.shape) if kind == "colour" else (colour == case.colour)),
        "iou": clf.mask_iou(case.source_mask, out_mask),
        "bg_psnr": min(clf.psnr(case.image, out, background), 60.0),
    }


def bootstrap_ci(values, rng: np.random.Generator) -> tuple[float, float, float]:
    """Mean and 95 % percentile bootstrap interval over scenes."""
    v = np.asarray(values, dtype=np.float64)
    means = v[rng.integers(0, len(v), (BOOTSTRAP, len(v)))].mean(axis=1)
    return float(v.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarise(per_scene: list[dict], rng) -> dict:
    return {k: bootstrap_ci([s[k] for s in per_scene], rng) for k in ("success", "other_kept", "iou", "bg_psnr")}


def paired(cds: list[dict], dds: list[dict], rng) -> dict:
    wins = [1.0 if c["iou"] > d["iou"] else 0.5 if c["iou"] == d["iou"] else 0.0 for c, d in zip(cds, dds, strict=True)]
    return {
        "win_rate": bootstrap_ci(wins, rng),
        "d_iou": bootstrap_ci([c["iou"] - d["iou"] for c, d in zip(cds, dds, strict=True)], rng),
        "d_success": bootstrap_ci([c["success"] - d["success"] for c, d in zip(cds, dds, strict=True)], rng),
    }


def fmt(ci, pct=False, digits=3) -> str:
    m, lo, hi = ci
    if pct:
        return f"{m:.0%} [{lo:.0%}, {hi:.0%}]"
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


# ----------------------------------------------------------------------------- phases
def run_phase(model, split, n, w_cuts, maskings, args, out: Path) -> dict:
    """Per-scene scores for every (family, kind, masked, w_cut) of a split, merged into
    out/scenes_<split>.json (written after every row, so a run can be resumed or split);
    the output images go to out/outputs_<split>.npz."""
    path, img_path = out / f"scenes_{split}.json", out / f"outputs_{split}.npz"
    saved = json.loads(path.read_text()) if path.exists() else {"redrawn": {}, "scenes": {}}
    outputs = dict(np.load(img_path)) if img_path.exists() else {}
    for family in args.families.split(","):
        batch, saved["redrawn"][family] = cases(family, split, n)
        for kind in args.kinds.split(","):
            for masked in maskings:
                for w in w_cuts:
                    key = f"{family}/{kind}/{'masked' if masked else 'whole'}/{w:g}"
                    if key in saved["scenes"] and not args.redo:
                        continue  # resumed: this row is done
                    s = EditSettings(mode="dds" if w == 0 else "cds", w_cut=w or None, steps=args.steps,
                                     guidance_scale=args.guidance)
                    start = time.perf_counter()
                    imgs = run_cases(model, batch, kind, masked, s, args.seed)
                    rows = [{"seed": c.seed, **scene_scores(c, o, kind)} for c, o in zip(batch, imgs, strict=True)]
                    saved["scenes"][key] = rows
                    outputs[key] = np.stack(imgs)
                    log.info("%s %s: %.0f s, success %.2f, iou %.3f", split, key, time.perf_counter() - start,
                             np.mean([r["success"] for r in rows]), np.mean([r["iou"] for r in rows]))
                    path.write_text(json.dumps(saved))
                    np.savez_compressed(img_path, **outputs)
    return saved


def choose_w_cut(val: dict, w_cuts: list[float]) -> dict:
    def pooled(w, k):
        return float(np.mean([r[k] for key, rows in val.items() if key.endswith(f"/{w:g}") for r in rows]))

    dds_success = pooled(0.0, "success")
    table = {f"{w:g}": {"success": pooled(w, "success"), "iou": pooled(w, "iou")} for w in [0.0, *w_cuts]}
    ok = [w for w in w_cuts if pooled(w, "success") >= dds_success - 0.05]
    if not ok:
        return {"w_cut": None, "pooled": table, "reason": "no CDS w_cut kept success within 5 points of DDS"}
    best = max(ok, key=lambda w: pooled(w, "iou"))
    return {"w_cut": best, "pooled": table,
            "reason": f"best pooled validation IoU ({pooled(best, 'iou'):.3f}, DDS {pooled(0.0, 'iou'):.3f}) with success "
                      f"{pooled(best, 'success'):.0%} (DDS {dds_success:.0%})"}


def plot(val: dict, w_cuts: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, family in zip(axes, ("world", "hard"), strict=True):
        for kind, marker in (("colour", "o-"), ("shape", "s--")):
            pts = []
            for w in [0.0, *w_cuts]:
                rows = val[f"{family}/{kind}/whole/{w:g}"]
                pts.append((np.mean([r["iou"] for r in rows]), np.mean([r["success"] for r in rows]), w))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker, label=f"{kind} edits")
            for x, y, w in pts:
                ax.annotate("DDS" if w == 0 else f"{w:g}", (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("structure kept (object IoU, from pixels)")
        ax.set_ylabel("edit success")
        ax.set_title(f"validation, {family} scenes (labels: w_cut)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def grid(batch: list[Case], columns: dict[str, list[np.ndarray]], path: Path, n: int = 6) -> None:
    from PIL import Image, ImageDraw

    names = ["source", *columns]
    cell = 64
    img = Image.new("RGB", (cell * len(names), 14 + cell * n), "white")
    draw = ImageDraw.Draw(img)
    for j, name in enumerate(names):
        draw.text((j * cell + 2, 1), name[:11], fill="black")
    for i in range(min(n, len(batch))):
        tiles = [batch[i].image] + [columns[k][i] for k in columns]
        for j, tile in enumerate(tiles):
            img.paste(Image.fromarray(tile), (j * cell, 14 + i * cell))
    img.save(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="shapes-demo")
    p.add_argument("--device", default="cpu")
    p.add_argument("--phase", default="all", choices=["all", "val", "test", "report"],
                   help="all = val, test, report; test/report take the w_cut from out/scenes_val.json or --w-cut")
    p.add_argument("--val-scenes", type=int, default=10, help="scenes per family in the validation split")
    p.add_argument("--test-scenes", type=int, default=12, help="scenes per family in the test split")
    p.add_argument("--w-cuts", default="15,30,60", help="CDS w_cuts tried on validation")
    p.add_argument("--w-cut", type=float, default=None, help="test this w_cut instead of the validation choice")
    p.add_argument("--methods", default=None,
                   help="test phase: only these w_cuts (0 = DDS), e.g. '0' to run the DDS rows alone")
    p.add_argument("--families", default="world,hard", help="scene families to run (val/test phases)")
    p.add_argument("--kinds", default="colour,shape", help="edit kinds to run (val/test phases)")
    p.add_argument("--redo", action="store_true", help="recompute rows already in out/scenes_<split>.json")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/out/quality")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, device=args.device, dtype="fp32")
    w_cuts = [float(w) for w in args.w_cuts.split(",")]
    started = time.perf_counter()
    if args.phase in ("all", "val"):
        run_phase(model, "val", args.val_scenes, [0.0, *w_cuts], (False,), args, out)
    val_path = out / "scenes_val.json"
    choice = choose_w_cut(json.loads(val_path.read_text())["scenes"], w_cuts) if val_path.exists() else None
    w_test = args.w_cut if args.w_cut is not None else (choice or {}).get("w_cut")
    if args.phase in ("all", "test"):
        if w_test is None and args.methods is None:
            raise SystemExit("no w_cut to test: run the val phase first or pass --w-cut")
        methods = [float(w) for w in args.methods.split(",")] if args.methods else [0.0, w_test]
        run_phase(model, "test", args.test_scenes, methods, (False, True), args, out)
    if args.phase in ("all", "report"):
        report(model, args, out, choice, w_test, w_cuts, time.perf_counter() - started)


def report(model, args, out: Path, choice, w_test, w_cuts, seconds) -> None:
    rng = np.random.default_rng(0)
    info = {"args": vars(args), "model": model.label, "torch": torch.__version__, "seconds_this_call": seconds}
    val_path = out / "scenes_val.json"
    if val_path.exists():
        val = json.loads(val_path.read_text())
        info["validation"] = {
            "redrawn": val["redrawn"],
            "rows": {k: summarise(v, rng) for k, v in val["scenes"].items()},
            "choice": choice,
        }
        plot(val["scenes"], w_cuts, out / "tradeoff.png")
    info["w_cut_tested"] = w_test
    test = json.loads((out / "scenes_test.json").read_text())
    res = {k: v for k, v in test["scenes"].items() if k.endswith(("/0", f"/{w_test:g}"))}
    rows = {k: summarise(v, rng) for k, v in res.items()}
    comparisons = {}
    for key in res:
        if key.endswith(f"/{w_test:g}"):
            base = key.rsplit("/", 1)[0]
            comparisons[base] = paired(res[key], res[f"{base}/0"], rng)
    bases = [k.rsplit("/", 1)[0] for k in res if k.endswith(f"/{w_test:g}") and f"{k.rsplit('/', 1)[0]}/0" in res]
    for label, pick in (("all whole-image", "/whole"), ("all masked", "/masked"), ("all test edits", "")):
        chosen = [b for b in bases if pick in b]
        cds = [r for b in chosen for r in res[f"{b}/{w_test:g}"]]
        dds = [r for b in chosen for r in res[f"{b}/0"]]
        comparisons[label] = paired(cds, dds, rng)
    info["test"] = {"redrawn": test["redrawn"], "rows": rows, "cds_vs_dds": comparisons}
    (out / "results.json").write_text(json.dumps(info, indent=1))

    images_out = np.load(out / "outputs_test.npz")
    for family in ("world", "hard"):
        batch, _ = cases(family, "test", args.test_scenes)
        for kind in ("colour", "shape"):
            cols = {}
            for m in ("whole", "masked"):
                cols[f"DDS {m}"] = list(images_out[f"{family}/{kind}/{m}/0"])
                cols[f"CDS {m}"] = list(images_out[f"{family}/{kind}/{m}/{w_test:g}"])
            grid(batch, cols, out / f"grid_{family}_{kind}.png")

    print(f"# {model.label}: {args.steps} steps, guidance {args.guidance}, seed {args.seed}, {args.device} "
          f"({args.threads} thread)")
    if "validation" in info:
        print("\n## Validation (whole-image edits)\n")
        print("| family | edit | method | w_cut | success | other kept | object IoU | bg PSNR dB |")
        print("|---|---|---|---:|---|---|---|---|")
        for key, r in info["validation"]["rows"].items():
            family, kind, _, w = key.split("/")
            print(f"| {family} | {kind} | {'DDS' if w == '0' else 'CDS'} | {w} | {fmt(r['success'], True)} | "
                  f"{fmt(r['other_kept'], True)} | {fmt(r['iou'])} | {fmt(r['bg_psnr'], digits=1)} |")
        print(f"\nchosen w_cut: {choice}")
    print(f"\n## Test ({args.test_scenes} scenes per family; CDS at w_cut {w_test:g})\n")
    print("| family | edit | mask | method | success | other kept | object IoU | bg PSNR dB |")
    print("|---|---|---|---|---|---|---|---|")
    for key, r in sorted(rows.items()):
        family, kind, m, w = key.split("/")
        print(f"| {family} | {kind} | {m} | {'DDS' if w == '0' else 'CDS'} | {fmt(r['success'], True)} | "
              f"{fmt(r['other_kept'], True)} | {fmt(r['iou'])} | {fmt(r['bg_psnr'], digits=1)} |")
    print("\n| test cell | CDS IoU win rate | mean IoU CDS - DDS | success CDS - DDS |")
    print("|---|---|---|---|")
    for base, c in comparisons.items():
        print(f"| {base} | {fmt(c['win_rate'], True)} | {fmt(c['d_iou'])} | {fmt(c['d_success'], True)} |")


if __name__ == "__main__":
    main()
