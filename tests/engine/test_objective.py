"""The CDS step: equals an independent re-expression of the published two-pass loop."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from cds_desktop.engine import CDSObjective, EditSettings
from cds_desktop.engine.errors import EditError
from cds_desktop.engine.losses import patch_nce


def _inputs(model, b=1, hw=(16, 16), seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    z_src = torch.randn(b, 4, *hw, generator=g, dtype=torch.float64).to(dtype)
    z_trg = z_src + 0.3 * torch.randn(b, 4, *hw, generator=g, dtype=torch.float64).to(dtype)
    noise = torch.randn(b, 4, *hw, generator=g, dtype=torch.float64).to(dtype)
    emb = [model.encode_prompt(p).to(dtype) for p in ("", "a red circle", "a blue square")]
    return z_src, z_trg, noise, emb


@pytest.fixture(scope="module")
def unet64(tiny_model):
    """A float64 copy of the tiny UNet: equality then holds far below fp32 rounding."""
    return copy.deepcopy(tiny_model.unet).double()


def published_nce(source_tokens, target_tokens, hw, s: EditSettings, anchor="source"):
    """PatchNCE of one layer as the published CDS code defines it (``CutLoss.PatchNCELoss(
    ref_noise, trg_noise)``): per patch size, L2-normalised over channels, for every position i
    the logits [<S_i, T_i>, <S_i, T_j> for all j with j = i set to -10] / tau, cross-entropy to
    class 0, mean over positions; summed over patch sizes. ``anchor="target"`` is the CUT-paper
    orientation (T_i against S_j), only used to show that the two differ."""
    h_lat, w_lat = hw
    n, c = source_tokens.shape[1], source_tokens.shape[2]
    side_h = int(round((n * h_lat / w_lat) ** 0.5))
    total = 0.0
    for ps in s.patch_sizes:
        grids = [
            x.transpose(1, 2).reshape(1, c, side_h, n // side_h)
            for x in (source_tokens, target_tokens)
        ]
        if ps > 1:
            grids = [F.avg_pool2d(g, ps) for g in grids]
        src, trg = (F.normalize(g, dim=1)[0].flatten(1).t() for g in grids)  # (positions, C)
        src = src.detach()
        a, other = (src, trg) if anchor == "source" else (trg, src)
        l_pos = (a * other).sum(1, keepdim=True)
        l_neg = a @ other.t()
        l_neg = l_neg.masked_fill(torch.eye(len(a), dtype=torch.bool), -10.0)
        logits = torch.cat([l_pos, l_neg], 1) / s.tau
        total = total + F.cross_entropy(logits, torch.zeros(len(a), dtype=torch.long))
    return total


def published_gradient(
    unet,
    scheduler,
    s: EditSettings,
    z_src,
    z_trg,
    t,
    noise,
    uncond,
    cond_src,
    cond_trg,
    anchor="source",
):
    """Straightforward two-pass form of the published code, written independently.

    Pass 1 (no grad): [src, trg] x [uncond, cond] -> DDS gradient. Pass 2 (grad): [src, trg]
    conditioned on [y_src, y_trg], outputs of every up-block attn1 read by forward hooks,
    PatchNCE (source anchor) over all positions; loss = dds_surrogate + w_cut * nce.
    """
    a = scheduler.alphas_cumprod[t].to(z_src.dtype)
    noised = lambda z: a.sqrt() * z + (1 - a).sqrt() * noise  # noqa: E731
    with torch.no_grad():
        eps = unet(
            torch.cat([noised(z_src), noised(z_trg)] * 2),
            t,
            encoder_hidden_states=torch.cat([uncond, uncond, cond_src, cond_trg]),
        ).sample
        u_s, u_t, c_s, c_t = eps.chunk(4)
        g = s.guidance_scale
        dds = (u_t + g * (c_t - u_t)) - (u_s + g * (c_s - u_s))
    z = z_trg.clone().requires_grad_(True)
    feats = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: feats.append(out))
        for name, m in unet.named_modules()
        if name.startswith("up_blocks.") and name.endswith(".attn1")
    ]
    try:
        unet(
            torch.cat([noised(z_src), noised(z)]),
            t,
            encoder_hidden_states=torch.cat([cond_src, cond_trg]),
        )
    finally:
        for h in hooks:
            h.remove()
    assert feats, "the UNet has up-block attn1 layers"
    nce = sum(published_nce(f[0:1], f[1:2], z_trg.shape[-2:], s, anchor) for f in feats)
    dds_loss = (z * dds).sum() * 2000 * s.w_dds / (64 * 64)
    (grad,) = torch.autograd.grad(dds_loss + s.effective_w_cut * nce, z)
    return grad


@pytest.mark.parametrize("hw", [(16, 16), (12, 20)])
@pytest.mark.parametrize("mode", ["cds", "dds"])
def test_gradient_matches_published_two_pass_loop(tiny_model, unet64, mode, hw):
    m = tiny_model
    s = EditSettings(mode=mode, w_cut=3.0, n_patches=10_000)
    z_src, z_trg, noise, (unc, src, trg) = _inputs(m, hw=hw, dtype=torch.float64)
    ours = CDSObjective(unet64, m.scheduler, s).gradient(z_src, z_trg, 500, noise, unc, src, trg)
    reference = published_gradient(
        unet64, m.scheduler, s, z_src, z_trg, torch.tensor(500), noise, unc, src, trg
    )
    assert reference.abs().max() > 0
    torch.testing.assert_close(
        ours.double(), reference, rtol=1e-9, atol=1e-9 * reference.abs().max().item()
    )


@pytest.mark.parametrize("hw", [(16, 16), (12, 20)])
@pytest.mark.parametrize("w_dds", [0.0, 1.0])
def test_contrastive_orientation_is_the_published_one(tiny_model, unet64, hw, w_dds):
    """Source as anchor, target patches as positive and negatives: the gradient equals the
    published definition and clearly differs from the CUT-paper orientation (target anchor)."""
    m = tiny_model
    s = EditSettings(w_cut=30.0, w_dds=w_dds, n_patches=10_000)
    z_src, z_trg, noise, (unc, src, trg) = _inputs(m, hw=hw, seed=3, dtype=torch.float64)
    args = (unet64, m.scheduler, s, z_src, z_trg, torch.tensor(400), noise, unc, src, trg)
    ours = CDSObjective(unet64, m.scheduler, s).gradient(z_src, z_trg, 400, noise, unc, src, trg)
    published = published_gradient(*args)
    cut_paper = published_gradient(*args, anchor="target")
    scale = published.abs().max().item()
    torch.testing.assert_close(ours, published, rtol=1e-9, atol=1e-9 * scale)
    gap = ((cut_paper - published).norm() / published.norm()).item()
    assert gap > 1e-2 if w_dds == 0 else gap > 1e-3, (
        f"orientations should differ, relative gap {gap:.2e}"
    )


def test_patch_nce_with_sampling_uses_the_same_positions_for_source_and_target():
    """With n_patches < positions, one CPU randperm per patch size picks the positions of both
    maps; the loss and gradient equal the published formula on those positions."""
    g = torch.Generator().manual_seed(0)
    source = torch.randn(1, 8, 6, 10, generator=g, dtype=torch.float64)
    target = (
        source + 0.5 * torch.randn(1, 8, 6, 10, generator=g, dtype=torch.float64)
    ).requires_grad_(True)
    s = EditSettings(n_patches=7, patch_sizes=(1, 2))
    ours = patch_nce(
        target, source, s.patch_sizes, s.n_patches, s.tau, torch.Generator().manual_seed(5)
    )
    (g_ours,) = torch.autograd.grad(ours.sum(), target)

    draw = torch.Generator().manual_seed(5)
    ref = 0.0
    for ps in s.patch_sizes:
        pooled = [F.avg_pool2d(x, ps) if ps > 1 else x for x in (source, target)]
        src, trg = (F.normalize(x, dim=1)[0].flatten(1).t() for x in pooled)
        idx = torch.randperm(len(src), generator=draw)[: s.n_patches]
        src, trg = src[idx].detach(), trg[idx]
        logits = (
            torch.cat(
                [
                    (src * trg).sum(1, keepdim=True),
                    (src @ trg.t()).masked_fill(torch.eye(len(idx), dtype=torch.bool), -10.0),
                ],
                1,
            )
            / s.tau
        )
        ref = ref + F.cross_entropy(logits, torch.zeros(len(idx), dtype=torch.long))
    (g_ref,) = torch.autograd.grad(ref, target)
    torch.testing.assert_close(ours.sum(), ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-10, atol=1e-12)


def test_gradient_matches_in_fp32_to_rounding(tiny_model):
    m = tiny_model
    s = EditSettings(w_cut=3.0, n_patches=10_000)
    z_src, z_trg, noise, (unc, src, trg) = _inputs(m)
    ours = CDSObjective(m.unet, m.scheduler, s).gradient(z_src, z_trg, 500, noise, unc, src, trg)
    reference = published_gradient(
        m.unet, m.scheduler, s, z_src, z_trg, torch.tensor(500), noise, unc, src, trg
    )
    # fp32: batch composition changes GEMM blocking; differences stay at rounding level
    torch.testing.assert_close(ours, reference, rtol=1e-3, atol=1e-4 * reference.abs().max().item())


def test_cut_term_changes_the_gradient(tiny_model):
    m = tiny_model
    z_src, z_trg, noise, (unc, src, trg) = _inputs(m)
    g_dds = CDSObjective(m.unet, m.scheduler, EditSettings(mode="dds")).gradient(
        z_src, z_trg, 300, noise, unc, src, trg
    )
    g_cds = CDSObjective(m.unet, m.scheduler, EditSettings(w_cut=3.0)).gradient(
        z_src, z_trg, 300, noise, unc, src, trg
    )
    assert (g_cds - g_dds).abs().max() > 1e-6


def test_batch_rows_are_independent_edits(tiny_model, unet64):
    m = tiny_model
    s = EditSettings(w_cut=3.0, n_patches=10_000)
    z_src, z_trg, noise, (unc, src, trg) = _inputs(m, b=2, dtype=torch.float64)
    obj = CDSObjective(unet64, m.scheduler, s)
    both = obj.gradient(z_src, z_trg, 400, noise, unc, src, trg)
    for i in range(2):
        one = obj.gradient(z_src[i : i + 1], z_trg[i : i + 1], 400, noise[i : i + 1], unc, src, trg)
        torch.testing.assert_close(
            both[i : i + 1], one, rtol=1e-9, atol=1e-9 * one.abs().max().item()
        )


def test_identical_prompts_give_zero_dds_gradient(tiny_model):
    m = tiny_model
    z_src, _, noise, (unc, src, _) = _inputs(m)
    g = CDSObjective(m.unet, m.scheduler, EditSettings(mode="dds")).gradient(
        z_src, z_src.clone(), 700, noise, unc, src, src
    )
    assert g.abs().max().item() == 0.0


def test_processors_and_flags_restored_after_call_and_after_exception(tiny_model, monkeypatch):
    m = tiny_model
    unet = m.unet
    unet.up_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q.weight.requires_grad_(
        True
    )  # a flag to keep
    before_procs = {k: type(v) for k, v in unet.attn_processors.items()}
    before_flags = {n: p.requires_grad for n, p in unet.named_parameters()}
    z_src, z_trg, noise, (unc, src, trg) = _inputs(m)
    obj = CDSObjective(unet, m.scheduler, EditSettings(w_cut=3.0))
    try:
        obj.gradient(z_src, z_trg, 100, noise, unc, src, trg)
        assert all(p.grad is None for p in unet.parameters()), "UNet weights must get no gradients"
        assert {k: type(v) for k, v in unet.attn_processors.items()} == before_procs
        assert {n: p.requires_grad for n, p in unet.named_parameters()} == before_flags

        import cds_desktop.engine.cds as cds_mod

        def boom(*a, **k):
            raise RuntimeError("boom")

        monkeypatch.setattr(cds_mod, "patch_nce", boom)
        with pytest.raises(RuntimeError, match="boom"):
            obj.gradient(z_src, z_trg, 100, noise, unc, src, trg)
        assert {k: type(v) for k, v in unet.attn_processors.items()} == before_procs
        assert {n: p.requires_grad for n, p in unet.named_parameters()} == before_flags
    finally:
        unet.requires_grad_(False)


def test_settings_validation_names_the_field():
    with pytest.raises(EditError, match="steps"):
        EditSettings(steps=0)
    with pytest.raises(EditError, match="mode"):
        EditSettings(mode="sds")
    with pytest.raises(EditError, match="w_cut"):
        EditSettings(w_cut=float("nan"))
    with pytest.raises(EditError, match="t_range"):
        EditSettings(t_range=(900, 100))
    with pytest.raises(EditError, match="unknown"):
        EditSettings.from_dict({"stepz": 3})
    s = EditSettings(steps=7, patch_sizes=[1, 2])
    assert EditSettings.from_dict(s.to_dict()) == s


def test_dds_scale_is_per_element_by_default():
    s = EditSettings()
    assert s.dds_gain(16, 16) == s.dds_gain(64, 64) == pytest.approx(2000 / 4096)
    pub = EditSettings(dds_scale="published")
    assert pub.dds_gain(16, 16) == pytest.approx(2000 / 256)
    assert EditSettings(mode="dds", w_cut=5).effective_w_cut == 0
