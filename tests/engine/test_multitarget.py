"""Several targets in one shared run: each result equals that target edited alone (same seed)."""

from __future__ import annotations

import copy
import dataclasses
import threading

import numpy as np
import pytest
import torch

from cds_desktop.engine import CDSObjective, EditSettings, edit, edits, run_edits
from cds_desktop.engine import editing as cds_mod
from cds_desktop.engine.cds import Draws, targets_per_chunk
from cds_desktop.engine.editing import Progress
from cds_desktop.engine.errors import EditError

TARGETS = ("a pig", "a cow", "a dog")
FAST = EditSettings(steps=3, working_size=32, preview_every=2, w_cut=30.0)


def _image(h=40, w=56, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _mask(h=40, w=56):
    m = np.zeros((h, w), np.uint8)
    m[10:28, 18:40] = 255
    return m


@pytest.fixture(scope="module")
def model64(tiny_model):
    """The tiny model with a float64 UNet: batching then changes results far below uint8."""
    return dataclasses.replace(
        tiny_model, unet=copy.deepcopy(tiny_model.unet).double(), _prompt_cache={}
    )


@pytest.mark.parametrize("chunk", [None, 1, 2])
@pytest.mark.parametrize("mode", ["cds", "dds"])
def test_shared_source_gradient_equals_each_target_alone(tiny_model, model64, mode, chunk):
    m = model64
    s = EditSettings(
        mode=mode, w_cut=30.0, n_patches=10
    )  # n_patches < positions: sampling is shared
    g = torch.Generator().manual_seed(0)
    z_src = torch.randn(1, 4, 8, 12, generator=g, dtype=torch.float64)
    z_trg = z_src + 0.3 * torch.randn(3, 4, 8, 12, generator=g, dtype=torch.float64)
    noise = torch.randn(1, 4, 8, 12, generator=g, dtype=torch.float64)
    unc, src = m.encode_prompt(""), m.encode_prompt("a cat")
    trg = torch.cat([m.encode_prompt(t) for t in TARGETS])
    obj = CDSObjective(m.unet, m.scheduler, s)
    together = obj.gradient(
        z_src, z_trg, 450, noise, unc, src, trg, torch.Generator().manual_seed(9), chunk
    )
    for i in range(3):
        alone = obj.gradient(
            z_src,
            z_trg[i : i + 1],
            450,
            noise,
            unc,
            src,
            trg[i : i + 1],
            torch.Generator().manual_seed(9),
        )
        scale = alone.abs().max().item()
        assert scale > 0
        torch.testing.assert_close(
            together[i : i + 1], alone, rtol=1e-9, atol=1e-9 * scale, msg=f"target {i}"
        )


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("mode", ["cds", "dds"])
def test_each_result_equals_the_target_edited_alone(model64, mode, masked):
    mask = _mask() if masked else None
    s = FAST.replace(mode=mode)
    shared = edits(model64, _image(), "a cat", TARGETS, mask, s)
    assert [r.target_prompt for r in shared] == list(TARGETS)
    for target, result in zip(TARGETS, shared, strict=True):
        alone = edit(model64, _image(), "a cat", target, mask, s)
        assert np.array_equal(result.image, alone.image), f"{mode} {target}: shared run differs"
        assert np.array_equal(result.region, alone.region)
    assert not np.array_equal(shared[0].region, shared[1].region), (
        "targets must not share one result"
    )


def test_fp32_results_equal_single_runs_to_rounding(tiny_model):
    shared = edits(tiny_model, _image(), "a cat", TARGETS, _mask(), FAST)
    for target, result in zip(TARGETS, shared, strict=True):
        alone = edit(tiny_model, _image(), "a cat", target, _mask(), FAST)
        diff = np.abs(result.image.astype(int) - alone.image.astype(int))
        assert diff.max() <= 1, f"{target}: {diff.max()} levels apart (fp32 batching only rounds)"


def test_memory_budget_splits_targets_into_chunks_with_the_same_results(model64, monkeypatch):
    chunks = []
    real = CDSObjective.step_gradient

    def spy(self, *args, **kwargs):
        chunks.append(args[8] if len(args) > 8 else kwargs.get("chunk"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(CDSObjective, "step_gradient", spy)
    roomy = edits(model64, _image(), "a cat", TARGETS, None, FAST)
    assert chunks == [1, 3, 3], "step 1 measures one target, then all fit"
    chunks.clear()
    tight = drain_all(run_edits(model64, _image(), "a cat", TARGETS, None, FAST, memory_budget=1))
    assert chunks == [1, 1, 1], "a budget below one target's memory runs them one at a time"
    for a, b in zip(roomy, tight, strict=True):
        assert np.array_equal(a.image, b.image)


def drain_all(gen):
    return cds_mod.drain(gen)


def test_targets_per_chunk_from_measured_bytes():
    assert targets_per_chunk(8, None, 10) == 8
    assert targets_per_chunk(8, 100, 10_000) == 8
    assert targets_per_chunk(8, 100, 3 * 125) == 3  # 125 bytes per target with head room
    assert targets_per_chunk(8, 100, 10) == 1


def test_progress_counts_targets_holds_no_tensors_and_previews_each(tiny_model):
    gen = run_edits(tiny_model, _image(), "a cat", TARGETS, _mask(), FAST)
    progress: list[Progress] = []
    result = cds_mod.drain(gen, progress.append)
    assert len(result) == 3 and [p.step for p in progress] == [1, 2, 3]
    for p in progress:
        assert p.count == 3
        for name, value in vars(p).items():
            items = value if isinstance(value, tuple) else (value,)
            assert not any(isinstance(v, torch.Tensor) for v in items), (
                f"Progress.{name} holds a tensor"
            )
    cheap = [progress[0].preview(i) for i in range(3)]
    assert all(c.dtype == np.uint8 and c.shape[2] == 3 for c in cheap)
    assert not np.array_equal(cheap[0], cheap[1])
    assert progress[1].decoded is not None and len(progress[1].decoded) == 3
    with pytest.raises(IndexError):
        progress[0].preview(3)


def test_previews_are_made_on_the_generating_thread(tiny_model, monkeypatch):
    """The cheap preview (a device->CPU copy) runs where the edit runs, never where it is read."""
    threads = []
    real = cds_mod.cheap_previews

    def spy(z, projection):
        threads.append(threading.current_thread().name)
        return real(z, projection)

    monkeypatch.setattr(cds_mod, "cheap_previews", spy)
    box = {}

    def worker():
        box["progress"] = next(run_edits(tiny_model, _image(), "a cat", TARGETS[:2], None, FAST))

    t = threading.Thread(target=worker, name="edit-worker")
    t.start()
    t.join(60)
    before = list(threads)
    assert box["progress"].preview(1) is not None  # read on this thread: no new computation
    assert before == ["edit-worker"] and threads == before


def test_no_targets_is_a_clear_error(tiny_model):
    with pytest.raises(EditError, match="target prompt is empty"):
        next(run_edits(tiny_model, _image(), "a cat", [], None, FAST))
    with pytest.raises(EditError, match="target prompt is empty"):
        next(run_edits(tiny_model, _image(), "a cat", ["a pig", " "], None, FAST))


# ----------------------------------------------------------------------------- random draws
def test_draws_come_from_cpu_generators_whatever_the_device():
    """t and noise depend only on the seed: drawing for another device ("meta" here; CUDA/MPS
    alike) consumes the same CPU stream, so the next draws match a run that stayed on the CPU."""
    a, b = Draws(11), Draws(11)
    t_meta, n_meta = a.step((50, 948), (1, 4, 8, 8), "meta")
    assert n_meta.device.type == "meta" and a.noise.device.type == "cpu"
    b.step((50, 948), (1, 4, 8, 8), "cpu")
    t_a, n_a = a.step((50, 948), (1, 4, 8, 8), "cpu")
    t_b, n_b = b.step((50, 948), (1, 4, 8, 8), "cpu")
    assert t_a == t_b and torch.equal(n_a, n_b)
    first_t, first_noise = Draws(11).step((50, 948), (1, 4, 8, 8), "cpu")
    reference = torch.Generator().manual_seed(11)
    assert first_t == torch.randint(50, 949, (), generator=reference)
    assert torch.equal(first_noise, torch.randn((1, 4, 8, 8), generator=reference))


def test_a_seeded_edit_draws_only_from_cpu_generators(tiny_model, monkeypatch):
    """Every random op of an edit gets a CPU generator (which may feed any device), and the
    draws are exactly the seed's CPU stream: the same edit on CPU, CUDA or MPS."""
    seen = []
    for name in ("randint", "randn", "randperm"):
        real = getattr(torch, name)

        def wrapped(*args, _real=real, _name=name, **kwargs):
            gen = kwargs.get("generator")
            assert gen is not None and gen.device.type == "cpu", (
                f"torch.{_name} without a CPU generator"
            )
            assert kwargs.get("device") in (None, "cpu", torch.device("cpu")), (
                f"torch.{_name} drew on a device"
            )
            out = _real(*args, **kwargs)
            seen.append((_name, out.clone()))
            return out

        monkeypatch.setattr(torch, name, wrapped)
    s = FAST.replace(n_patches=4, seed=5)
    edit(tiny_model, _image(), "a cat", "a pig", None, s)
    monkeypatch.undo()
    assert [n for n, _ in seen if n != "randperm"] == ["randint", "randn"] * 3
    assert any(n == "randperm" for n, _ in seen), "n_patches=4 samples positions"
    expect = torch.Generator().manual_seed(5)
    draws = [v for n, v in seen if n != "randperm"]
    for i in range(0, len(draws), 2):
        assert torch.equal(draws[i], torch.randint(50, 949, (), generator=expect))
        assert torch.equal(draws[i + 1], torch.randn(draws[i + 1].shape, generator=expect))


def test_dds_and_cds_see_the_same_t_and_noise(tiny_model, monkeypatch):
    """Patch positions have their own generator, so switching w_cut never shifts t and noise."""
    streams = {}
    for mode in ("dds", "cds"):
        seen = []
        real = torch.randn

        def wrapped(*args, _real=real, _seen=seen, **kwargs):
            out = _real(*args, **kwargs)
            _seen.append(out.clone())
            return out

        monkeypatch.setattr(torch, "randn", wrapped)
        edit(tiny_model, _image(), "a cat", "a pig", None, FAST.replace(mode=mode, n_patches=4))
        monkeypatch.undo()
        streams[mode] = seen
    assert len(streams["dds"]) == len(streams["cds"]) == 3
    assert all(torch.equal(a, b) for a, b in zip(streams["dds"], streams["cds"], strict=True))


def test_cheap_previews_are_refreshed_by_time_not_every_step(tiny_model, monkeypatch):
    """The preview's device->host copy is not made every step: between refreshes a Progress
    carries the latest previews; the last step always has fresh ones."""
    calls = []
    real = cds_mod.cheap_previews

    def spy(z, projection):
        calls.append(z.clone())
        return real(z, projection)

    monkeypatch.setattr(cds_mod, "cheap_previews", spy)
    monkeypatch.setattr(cds_mod, "PREVIEW_REFRESH_S", 1e9)
    settings = FAST.replace(steps=4, preview_every=0)
    progress: list[Progress] = []
    cds_mod.drain(
        run_edits(tiny_model, _image(), "a cat", TARGETS[:1], None, settings), progress.append
    )
    assert len(calls) == 2, "refreshed on the first and the last step only"
    assert progress[1].previews is progress[0].previews
    assert not np.array_equal(progress[0].preview(), progress[-1].preview())
