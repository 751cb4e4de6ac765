"""SD-2.x v-prediction and SDXL through the same CDS engine (tiny random fixtures of each family)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from model_fixtures import save_folder, tiny_family

from cds_desktop.engine import CDSObjective, EditSettings, run_edit
from cds_desktop.engine.conditioning import to_epsilon
from cds_desktop.engine.models import load_model


def _latents(seed=0, hw=(8, 8)):
    g = torch.Generator().manual_seed(seed)
    z_src = torch.randn(1, 4, *hw, generator=g, dtype=torch.float64)
    z_trg = z_src + 0.3 * torch.randn(1, 4, *hw, generator=g, dtype=torch.float64)
    noise = torch.randn(1, 4, *hw, generator=g, dtype=torch.float64)
    emb = [torch.randn(1, 77, 48, generator=g, dtype=torch.float64) for _ in range(3)]
    return z_src, z_trg, noise, emb


@pytest.fixture(scope="module")
def sd2v():
    parts = tiny_family("sd2")
    parts["unet"] = parts["unet"].double()
    return parts


@pytest.mark.parametrize("t", [60, 500, 940])
def test_v_prediction_step_equals_the_independent_epsilon_difference(sd2v, t):
    unet, scheduler = sd2v["unet"], sd2v["scheduler"]
    assert scheduler.config.prediction_type == "v_prediction"
    s = EditSettings(mode="dds", guidance_scale=7.5)
    z_src, z_trg, noise, (uncond, c_src, c_trg) = _latents()
    got = CDSObjective(unet, scheduler, s).gradient(z_src, z_trg, t, noise, uncond, c_src, c_trg)

    # independently: alpha_bar from the betas, v from plain UNet calls, eps = sqrt(a) v + sqrt(1-a) z_t
    a = torch.cumprod(1 - scheduler.betas, 0)[t].double()  # fp32 schedule, as diffusers keeps it
    zt_src, zt_trg = (a.sqrt() * z + (1 - a).sqrt() * noise for z in (z_src, z_trg))

    def v(z, c):
        with torch.no_grad():
            return unet(z, t, encoder_hidden_states=c).sample

    def eps(z, c):
        return a.sqrt() * v(z, c) + (1 - a).sqrt() * z

    def guided(f, z, c):
        u = f(z, uncond)
        return u + 7.5 * (f(z, c) - u)

    want = s.dds_gain(8, 8) * (guided(eps, zt_trg, c_trg) - guided(eps, zt_src, c_src))
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    # the raw v-difference (what the engine used to take) is far from it
    wrong = s.dds_gain(8, 8) * (guided(v, zt_trg, c_trg) - guided(v, zt_src, c_src))
    assert (wrong - want).norm() > 0.2 * want.norm()


def test_cds_step_converts_v_in_every_pass(sd2v):
    """CDS's 3-sample pass and grad pass: the v-model's step minus the same UNet read as an
    epsilon model is exactly the DDS gain times (eps-difference - v-difference); the contrastive
    term (features only) cancels."""
    unet, scheduler = sd2v["unet"], sd2v["scheduler"]
    eps_scheduler = copy.deepcopy(scheduler)
    eps_scheduler.register_to_config(prediction_type="epsilon")
    s = EditSettings(mode="cds", w_cut=3.0, n_patches=16)
    z_src, z_trg, noise, (uncond, c_src, c_trg) = _latents(seed=1)
    t = 300

    def step(sched):
        gen = torch.Generator().manual_seed(5)
        return CDSObjective(unet, sched, s).gradient(
            z_src, z_trg, t, noise, uncond, c_src, c_trg, gen
        )

    a = scheduler.alphas_cumprod.double()[t]
    zt = [a.sqrt() * z + (1 - a).sqrt() * noise for z in (z_src, z_trg)]
    with torch.no_grad():
        out = {}
        for name, z, c in (
            ("su", zt[0], uncond),
            ("sc", zt[0], c_src),
            ("tu", zt[1], uncond),
            ("tc", zt[1], c_trg),
        ):
            out[name] = unet(z, t, encoder_hidden_states=c).sample
    shift = {
        k: (a.sqrt() - 1) * v + (1 - a).sqrt() * (zt[0] if k[0] == "s" else zt[1])
        for k, v in out.items()
    }
    g = s.guidance_scale
    expected = s.dds_gain(8, 8) * (
        (shift["tu"] + g * (shift["tc"] - shift["tu"]))
        - (shift["su"] + g * (shift["sc"] - shift["su"]))
    )
    torch.testing.assert_close(
        step(scheduler) - step(eps_scheduler), expected, rtol=1e-7, atol=1e-9
    )


@pytest.mark.parametrize("kind", ["v_prediction", "sample", "epsilon"])
def test_to_epsilon_recovers_the_noise(kind):
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    t = torch.tensor([100, 800])
    z_t = sched.add_noise(x0, eps, t)
    out = {"v_prediction": sched.get_velocity(x0, eps, t), "sample": x0, "epsilon": eps}[kind]
    a = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(to_epsilon(out, z_t, a, kind), eps, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- folders
@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {f: save_folder(tiny_family(f), root / f) for f in ("sd2", "sdxl")}


def _image():
    img = np.full((32, 32, 3), 200, np.uint8)
    img[8:24, 8:24] = (200, 30, 30)
    return img


def _run(model, settings):
    gen = run_edit(model, _image(), "a red square", "a blue square", settings=settings)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def test_sd21_v_folder_runs_through_the_engine(folders):
    model = load_model(str(folders["sd2"]), device="cpu", vae_backend="torch")
    assert model.family == "sd2" and model.prediction_type == "v_prediction"
    assert model.recommended == {"guidance_scale": 7.5, "w_cut": 3.0}
    result = _run(model, EditSettings(steps=2, working_size=32, n_patches=16))
    assert result.image.shape == (32, 32, 4) and result.settings.w_cut == 3.0


def test_sdxl_folder_conditions_every_unet_call(folders):
    model = load_model(str(folders["sdxl"]), device="cpu", vae_backend="torch")
    assert model.family == "sdxl" and model.text_encoder_2 is not None
    assert model.recommended == {"guidance_scale": 5.0, "w_cut": 0.75}
    assert model.native_size == 32  # 16 latent x VAE factor 2 (1024 for real SDXL)
    calls = []

    def spy(_module, args, kwargs):
        calls.append((args[0].shape, kwargs.get("added_cond_kwargs")))

    hook = model.unet.register_forward_pre_hook(spy, with_kwargs=True)
    try:
        result = _run(model, EditSettings(steps=2, working_size=32, n_patches=16))
    finally:
        hook.remove()
    assert len(calls) == 4  # per step: one 3-sample no-grad pass, one grad pass
    pooled_trg = model.text_encoder_2(
        model._ids(model.tokenizer_2, "a blue square"), output_hidden_states=True
    ).text_embeds
    for shape, added in calls:
        assert added is not None, "a UNet call without SDXL's added conditioning"
        assert added["text_embeds"].shape == (shape[0], 48)
        assert added["time_ids"].tolist() == [[32.0, 32.0, 0.0, 0.0, 32.0, 32.0]] * shape[0]
    grad_pass = calls[1][1]
    torch.testing.assert_close(grad_pass["text_embeds"], pooled_trg)
    assert result.image.shape == (32, 32, 4)
    # the empty (unconditional) prompt is all zeros for SDXL, hidden states and pooled alike
    uncond = model.encode_prompt("")
    assert uncond.shape == (1, 78, 80) and not uncond[:, :-1].any() and not uncond[0, -1, :48].any()


def test_sdxl_contrastive_term_uses_the_up_block_self_attention(folders):
    from cds_desktop.engine.attention import is_up_self_attention

    model = load_model(str(folders["sdxl"]), device="cpu", vae_backend="torch")
    layers = [n for n in model.unet.attn_processors if is_up_self_attention(n)]
    assert len(layers) == 4  # up block 0: 2 attentions x 2 transformer layers
    emb = [model.encode_prompt(p) for p in ("", "a red square", "a blue square")]
    z_src, z_trg, noise, _ = _latents(hw=(16, 16))
    z_src, z_trg, noise = (x.float() for x in (z_src, z_trg, noise))
    grads = {}
    for w in (0.0, 1.0):
        s = EditSettings(mode="cds", w_cut=w, n_patches=16)
        objective = CDSObjective(model.unet, model.scheduler, s)
        seen = []
        take = objective.store.take
        objective.store.take = lambda seen=seen, take=take: seen.append(len(f := take())) or f
        grads[w] = objective.gradient(
            z_src, z_trg, 400, noise, *emb, torch.Generator().manual_seed(0)
        )
        if w:
            assert seen == [4, 4]  # source-cond features, then target features
    assert (grads[1.0] - grads[0.0]).abs().max() > 0


def test_forced_family_of_a_folder_must_match(folders):
    from cds_desktop.engine.errors import ModelError

    model = load_model(str(folders["sd2"]), device="cpu", vae_backend="torch", family="sd2-base")
    assert model.family == "sd2-base"  # same components; the family only sets the defaults
    with pytest.raises(ModelError, match="--family sdxl was asked for"):
        load_model(str(folders["sd2"]), device="cpu", vae_backend="torch", family="sdxl")
