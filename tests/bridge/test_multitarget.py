"""Several target prompts in one bridge edit, over a real loopback socket: one engine job, one
result with an image per target (each equal to that target edited alone with the same seed),
old single-target clients unchanged, the limits, cancel, the command line, and the model
family's guidance when the client sends none."""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bridge_helpers import FAST, box_mask, png_array, png_bytes, rgba_image

from cds_desktop.bridge import BridgeServer, ServerLimits
from cds_desktop.engine.jobs import EventKind, JobQueue
from plugin_bridge import client as C
from plugin_bridge import protocol as P

GUARD = 60.0
TOKEN = "m" * 64
TARGETS = ["a pig", "a cow", "a dog"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model64(tiny_model):
    """The tiny model (torch VAE) with a float64 UNet: batching the targets then changes the
    results far below one uint8 level, so a shared run and single runs agree bit for bit."""
    return dataclasses.replace(
        tiny_model, unet=copy.deepcopy(tiny_model.unet).double(), _prompt_cache={}
    )


class Recorder:
    """A JobQueue whose submissions are recorded (how many engine jobs an edit became)."""

    def __init__(self, model) -> None:
        self.queue = JobQueue(loader=lambda spec, **kw: model)
        self.requests, self.jobs = [], []
        real = self.queue.submit

        def submit(request, listener=None, prepare=None):
            self.requests.append(request)
            job = real(request, listener, prepare)
            self.jobs.append(job)
            return job

        self.queue.submit = submit


@pytest.fixture(scope="module")
def recorder(model64):
    rec = Recorder(model64)
    yield rec
    rec.queue.shutdown()


@pytest.fixture(scope="module")
def server(recorder, config_home):
    limits = ServerLimits(max_payload=1 << 20, max_pixels=4096, max_targets=4)
    srv = BridgeServer(recorder.queue, port=0, token=TOKEN, model="tiny-random", limits=limits)
    srv.start()
    yield srv
    srv.stop()


def connect(server) -> C.BridgeClient:
    return C.BridgeClient(port=server.port, token=TOKEN, timeout=GUARD)


def _edit(client, target, seed=4, **settings):
    img, mask = rgba_image(seed), box_mask(4, 3, 26, 20)
    job = client.submit_edit(
        png_bytes(img),
        "a photo",
        target,
        mask_png=png_bytes(mask),
        settings={**FAST, "seed": seed, **settings},
        meta={"layer": "L"},
        offset=(7, 9),
    )
    return job, img, mask


# ----------------------------------------------------------------------------- results
def test_three_targets_give_three_results_equal_to_single_edits(server, recorder):
    recorder.requests.clear()
    with connect(server) as client:
        assert client.welcome["limits"]["max_targets"] == 4
        job, img, mask = _edit(client, TARGETS)
        messages = list(client.events(job, timeout=GUARD))
        singles = []
        for target in TARGETS:
            single_job, _, _ = _edit(client, target)
            singles.append(list(client.events(single_job, timeout=GUARD))[-1])
    result = messages[-1]
    assert result.type == P.RESULT, result
    assert [m.type for m in messages].count(P.RESULT) == 1, "one final message per job"
    assert len(recorder.requests) == 1 + 3, "the 3-target edit must be one engine job"
    shared_request = recorder.requests[0]
    assert shared_request.target_prompts == tuple(TARGETS)

    assert result["targets"] == TARGETS
    assert result["images"] == ["image", "image.1", "image.2"]
    assert result["offset"] == [7, 9] and result["meta"] == {"layer": "L"}
    images = [png_array(data) for data in P.result_images(result)]
    assert len(images) == 3
    for target, shared, single in zip(TARGETS, images, singles, strict=True):
        assert single.type == P.RESULT and "images" not in single
        alone = png_array(single.parts["image"])
        assert np.array_equal(shared, alone), f"{target!r}: the shared run differs from alone"
        assert np.array_equal(shared[mask == 0], img[mask == 0]), "pixels outside the mask"
        assert np.array_equal(shared[..., 3], img[..., 3]), "alpha changed"
    assert not np.array_equal(images[0], images[1]), "targets must not share one image"

    running = [m for m in messages if m.get("stage") == "running"]
    assert running and all(m["count"] == 3 for m in running)
    started = [m for m in messages if m.get("stage") == "started"]
    assert started and started[0]["count"] == 3


def test_previews_show_the_chosen_target(server):
    with connect(server) as client:
        msg = P.edit("pv", png_bytes(rgba_image(5)), "a photo", TARGETS, settings=FAST)
        msg["preview_target"] = 2
        client._send(msg)
        messages = list(client.events("pv", timeout=GUARD))
    assert messages[-1].type == P.RESULT
    with_preview = [m for m in messages if "preview" in m.parts]
    assert with_preview, "the first step carries a preview"
    assert all(m["preview_target"] == 2 for m in messages if m.get("stage") == "running")


# ----------------------------------------------------------------------------- old clients
#: the header keys a protocol-1 client got before multi-target edits existed
V1_KEYS = {
    "started": {"type", "job", "stage", "step", "total", "message"},
    "running": {"type", "job", "stage", "step", "total", "elapsed", "box"},
    P.RESULT: {"type", "job", "offset", "meta", "width", "height", "box", "elapsed", "steps",
               "model"},
}  # fmt: skip


def test_an_old_single_target_edit_gets_exactly_the_protocol_1_messages(server):
    old_edit = P.Message(  # built by hand, field by field, as a protocol-1 client does
        P.EDIT,
        "old-1",
        parts={"image": png_bytes(rgba_image(6))},
        source="a photo",
        target="a painting",
        settings=dict(FAST),
        meta={},
        offset=[0, 0],
    )
    with connect(server) as client:
        client._send(old_edit)
        messages = list(client.events("old-1", timeout=GUARD))
    result = messages[-1]
    assert result.type == P.RESULT and set(result) == V1_KEYS[P.RESULT]
    assert set(result.parts) == {"image"}
    assert png_array(result.parts["image"]).shape == (24, 32, 4)
    for msg in messages[:-1]:
        stage = msg.get("stage")
        if stage in V1_KEYS:
            assert set(msg) == V1_KEYS[stage], msg
            assert set(msg.parts) <= {"preview"}


def test_a_client_refuses_several_targets_for_a_server_that_predates_them(server, monkeypatch):
    real = server.welcome

    def old_welcome():
        msg = real()
        del msg["limits"]["max_targets"]
        return msg

    monkeypatch.setattr(server, "welcome", old_welcome)
    with connect(server) as client:
        assert client.max_targets == 1
        with pytest.raises(C.BridgeError) as info:
            client.submit_edit(png_bytes(rgba_image(1)), "a", ["b", "c"], settings=FAST)
        assert info.value.code == P.BAD_REQUEST and "one target per run" in str(info.value)
        result = client.edit(png_bytes(rgba_image(1)), "a", ["b"], settings=FAST)
        assert result.type == P.RESULT and "images" not in result  # sent as a plain target


# ----------------------------------------------------------------------------- limits
@pytest.mark.parametrize(
    "fields, code, fragment",
    [
        ({"targets": ["a", "b", "c", "d", "e"]}, P.BAD_REQUEST, "5 targets in one edit (max 4)"),
        ({"targets": []}, P.BAD_REQUEST, "non-empty list"),
        ({"targets": "a pig"}, P.BAD_REQUEST, "non-empty list"),
        ({"targets": ["a", " "]}, P.BAD_REQUEST, "targets[1]"),
        ({"targets": ["a", 3]}, P.BAD_REQUEST, "targets[1]"),
        ({"targets": ["a", "b"], "target": "a"}, P.BAD_REQUEST, "not both"),
        ({"targets": ["a", "b"], "preview_target": 2}, P.BAD_REQUEST, "preview_target"),
        ({"targets": ["a", "b", "c"], "image": (48, 32)}, P.TOO_LARGE, "3 targets x 48x32"),
    ],
)
def test_bad_target_lists_are_refused_and_the_connection_survives(server, fields, code, fragment):
    width, height = fields.pop("image", (32, 24))
    msg = P.edit("t-1", png_bytes(rgba_image(1, width, height)), "a", "b", settings=FAST)
    del msg["target"]
    msg.update(fields)
    with connect(server) as client:
        client._send(msg)
        final = list(client.events("t-1", timeout=GUARD))[-1]
        assert final.type == P.ERROR and final["code"] == code, final
        assert fragment in final["message"] and not final["fatal"]
        assert client.ping() >= 0


def test_cancel_mid_run_ends_all_targets_with_one_cancelled(server, recorder):
    recorder.requests.clear()
    recorder.jobs.clear()
    with connect(server) as client:
        job, _, _ = _edit(client, TARGETS, steps=100_000)
        finals = []
        for msg in client.events(job, timeout=GUARD):
            if msg.get("stage") == "running" and msg["step"] == 1:
                assert msg["count"] == 3
                client.cancel(job)
            if msg.is_final:
                finals.append(msg)
        assert len(finals) == 1 and finals[0]["code"] == P.CANCELLED, finals
        assert client.ping() >= 0  # nothing else arrived about the job before the pong
        assert all(m.job != job for m in client._backlog)
    assert len(recorder.jobs) == 1, "one engine job for the three targets"
    assert recorder.jobs[0].wait(GUARD) and recorder.jobs[0].state is EventKind.CANCELLED


# ----------------------------------------------------------------------------- command line
def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "plugin_bridge.client", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={**os.environ},
    )


def test_cli_writes_one_file_per_target_from_one_shared_run(server, recorder, tmp_path):
    img, mask = rgba_image(11), box_mask(2, 2, 20, 18)
    (tmp_path / "in.png").write_bytes(png_bytes(img))
    (tmp_path / "m.png").write_bytes(png_bytes(mask))
    (tmp_path / "token").write_text(TOKEN)
    recorder.requests.clear()
    proc = run_cli(
        str(tmp_path / "in.png"), "--source", "a photo", "--target", "a pig", "--target",
        "a cow", "--target", "a dog", "--mask", str(tmp_path / "m.png"), "--port",
        str(server.port), "--token-file", str(tmp_path / "token"), "--steps", "2", "--seed",
        "5", "-o", str(tmp_path / "out.png"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "step 2/2 (3 targets)" in proc.stderr
    assert len(recorder.requests) == 1 and recorder.requests[0].target_prompts == tuple(TARGETS)
    names = ["out-1-a-pig.png", "out-2-a-cow.png", "out-3-a-dog.png"]
    assert sorted(p.name for p in tmp_path.glob("out*")) == names
    outputs = [png_array((tmp_path / name).read_bytes()) for name in names]
    for out in outputs:
        assert out.shape == img.shape
        assert np.array_equal(out[mask == 0], img[mask == 0])
    assert not np.array_equal(outputs[0], outputs[2])
    with connect(server) as client:  # each file is its own target's edit, in order
        for target, out in zip(TARGETS, outputs, strict=True):
            alone = client.edit(png_bytes(img), "a photo", target, png_bytes(mask),
                                {"steps": 2, "seed": 5})  # fmt: skip
            assert np.array_equal(out, png_array(alone.parts["image"])), target
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    for name in names:
        assert f"wrote {tmp_path / name}" in proc.stderr


def test_cli_output_names_follow_cds_edit():
    from cds_desktop.cli import build_parser, output_paths

    args = build_parser().parse_args(["i.png", "--source", "s", "--target", "A cat!",
                                      "--target", "b", "-o", "d/o.png"])  # fmt: skip
    assert C.output_paths("d/o.png", args.target) == output_paths(args)
    assert C.output_paths("d/o.png", ["x"]) == [Path("d/o.png")]


# ----------------------------------------------------------------------------- guidance
@pytest.fixture(scope="module")
def sdxl_like_server(model64, config_home):
    """A server whose model recommends guidance 5 (as SDXL's family does)."""
    model = dataclasses.replace(model64, recommended={**model64.recommended, "guidance_scale": 5.0})
    queue = JobQueue(loader=lambda spec, **kw: model)
    srv = BridgeServer(queue, port=0, token=TOKEN, model="tiny-random").start()
    yield srv
    srv.stop()
    queue.shutdown()


def test_an_edit_without_guidance_uses_the_models_default(sdxl_like_server):
    def image(client, **settings) -> np.ndarray:
        result = client.edit(png_bytes(rgba_image(3)), "a photo", "a painting",
                             settings={**FAST, **settings})  # fmt: skip
        return png_array(result.parts["image"])

    with connect(sdxl_like_server) as client:
        default = image(client)
        five = image(client, guidance_scale=5.0)
        seven = image(client, guidance_scale=7.5)
    assert np.array_equal(default, five), "no guidance sent: the model's 5 must apply"
    assert not np.array_equal(default, seven), "the hard-coded 7.5 was used"


# ----------------------------------------------------------------------------- protocol helpers
def test_result_images_reads_single_and_listed_results():
    single = P.Message(P.RESULT, "j", parts={"image": b"A"})
    assert P.result_images(single) == [b"A"]
    listed = P.Message(
        P.RESULT, "j", parts={"image": b"A", "image.1": b"B"}, images=["image", "image.1"]
    )
    assert P.result_images(listed) == [b"A", b"B"]
    broken = P.Message(P.RESULT, "j", parts={"image": b"A"}, images=["image", "image.1"])
    with pytest.raises(P.ProtocolError, match="image.1"):
        P.result_images(broken)
    assert P.edit("j", b"", "s", ["a", "b"])["targets"] == ["a", "b"]
    assert "targets" not in P.edit("j", b"", "s", "a")
