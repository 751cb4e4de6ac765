"""The GIMP plug-in inside real GIMP 3 (Debian 13's gimp 3.0, in a chroot, headless).

gimp_chroot.py makes (or reuses) a Debian 13 chroot with GIMP 3 and its Python bindings.
The built cds-gimp.zip is installed in a fresh HOME inside it exactly as docs/plugins.md
says (unzip into ~/.config/GIMP/3.0/plug-ins/, chmod +x), a tiny-random bridge runs on the
host (``cds-desktop --serve --model tiny-random``; the chroot shares the host's loopback)
and gimp_driver.py, run by ``gimp-console-3.0 -i --batch-interpreter=python-fu-eval``,
calls the registered PDB procedure and dumps what GIMP then holds. The checks below read
those dumps: layer stack, offsets, sizes, Babl formats and raw pixels at the image's own
precision.

Skipped (one line saying why) where the chroot cannot be had: no root/sudo, no debootstrap
or, the only reason accepted when CDS_REQUIRE_GIMP=1 (as .ci/run sets it), a Debian mirror
that cannot be reached. The first run builds the chroot (minutes); later runs take ~1 min.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from . import gimp_chroot
from .conftest import ROOT
from .pixel_reference import srgb_encode
from .stalled_bridge import StalledBridge

HERE = Path(__file__).resolve().parent
W, H = 64, 48
OFFSET = (4, 2)
SELECTION = (20, 14, 16, 12)
BOX = [4, 2, 48, 40]  # selection + 16 px margin, clipped to the layer (at 4,2) and canvas
REQUIRED = os.environ.get("CDS_REQUIRE_GIMP") == "1"

pytestmark = pytest.mark.gimp


@pytest.fixture(scope="module")
def chroot() -> Path:
    try:
        return gimp_chroot.ensure()
    except gimp_chroot.Unavailable as exc:
        if REQUIRED and not isinstance(exc, gimp_chroot.Unreachable):
            pytest.fail(f"CDS_REQUIRE_GIMP=1 but {exc}")
        pytest.skip(f"real GIMP 3 test skipped: {exc}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served_bridge(tmp_path_factory):
    """``cds-desktop --serve --model tiny-random`` on a free port; yields (port, token)."""
    config = tmp_path_factory.mktemp("bridge-config")
    port = free_port()
    env = dict(os.environ, CDS_CONFIG_DIR=str(config), PYTHONPATH=str(ROOT))
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    log = config / "serve.log"
    argv = [sys.executable, "-m", "cds_desktop", "--serve", "--model", "tiny-random"]
    with open(log, "wb") as out:
        proc = subprocess.Popen([*argv, "--port", str(port)], env=env, stdout=out, stderr=out)
    try:
        token_file = config / "bridge-token"
        wait_until_serving(proc, port, token_file, log)
        yield port, token_file.read_text().strip()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until_serving(proc, port: int, token_file: Path, log: Path, limit: float = 180) -> None:
    from plugin_bridge.client import BridgeClient, BridgeError

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"cds-desktop --serve exited {proc.returncode}: {log.read_text()[-2000:]}")
        if token_file.is_file():
            try:
                with BridgeClient(port=port, token=token_file.read_text().strip()) as client:
                    client.ping()
                return
            except BridgeError:
                pass
        time.sleep(0.5)
    pytest.fail(f"cds-desktop --serve did not answer within {limit:.0f} s")


class Gimp:
    """GIMP 3 in the chroot with the plug-in installed, as docs/plugins.md says, in a fresh
    HOME per run."""

    def __init__(self, root: Path, zip_path: Path, token: str) -> None:
        self.root, self.zip_path, self.token = root, zip_path, token

    def install(self) -> tuple[str, Path]:
        """A fresh HOME (path inside the chroot, path on the host) with the plug-in."""
        home = f"/tmp/cds-gimp-test-{uuid.uuid4().hex[:12]}"
        host = self.root / home.lstrip("/")
        plug_ins = host / ".config" / "GIMP" / "3.0" / "plug-ins"
        plug_ins.mkdir(parents=True)
        with zipfile.ZipFile(self.zip_path) as archive:  # unzip -o cds-gimp.zip -d plug-ins/
            archive.extractall(plug_ins)
        script = plug_ins / "cds_gimp" / "cds_gimp.py"
        script.chmod(0o755)  # chmod +x, as the docs say
        token = host / ".config" / "cds-desktop" / "bridge-token"
        token.parent.mkdir(parents=True)
        token.write_text(self.token)
        token.chmod(0o600)
        (host / "out").mkdir()
        shutil.copyfile(HERE / "gimp_driver.py", host / "gimp_driver.py")
        return home, host

    def run(
        self, scenarios: list[str], env: dict[str, str], display: bool = False, during=None
    ) -> tuple:
        """Run the driver (or, with display, the dialog check); returns (report, out, log).
        ``during(home)`` runs in a thread while GIMP does."""
        home, host = self.install()
        helper = threading.Thread(target=during, args=(home,), daemon=True) if during else None
        if helper:
            helper.start()
        env = dict(env, CDS_TOKEN_FILE=f"{home}/.config/cds-desktop/bridge-token")
        if display:
            code = f"exec(open('{home}/gimp_driver.py').read()); dialog('{home}/out')"
        else:
            code = f"exec(open('{home}/gimp_driver.py').read()); run('{home}/out', {scenarios!r})"
        proc = gimp_chroot.gimp_batch(self.root, home, code, env=env, display=display)
        if helper:
            helper.join(60)
        report_file = host / "out" / "report.json"
        assert report_file.is_file(), (
            f"GIMP wrote no report (exit {proc.returncode}):\n" + (proc.stdout[-4000:])
        )
        report = json.loads(report_file.read_text())
        assert "error" not in report, report["error"]
        return report, host / "out", proc.stdout


@pytest.fixture(scope="module")
def gimp(chroot, served_bridge, build_tool, tmp_path_factory):
    zip_path = build_tool.build(tmp_path_factory.mktemp("dist"))[1]
    installs = []
    runner = Gimp(chroot, zip_path, served_bridge[1])
    original = runner.install

    def install():
        home, host = original()
        installs.append(host)
        return home, host

    runner.install = install
    yield runner
    for host in installs:
        shutil.rmtree(host, ignore_errors=True)


@pytest.fixture(scope="module")
def main_run(gimp, served_bridge):
    """Registration, edits of every kind, refusals and token problems in one GIMP session."""
    scenarios = ["registration", "edits", "refusals", "tokens"]
    report, out, _ = gimp.run(scenarios, {"CDS_BRIDGE_PORT": str(served_bridge[0])})
    return report, out


@pytest.fixture(scope="module")
def failure_runs(gimp):
    """One GIMP session per broken bridge (the port comes from GIMP's environment)."""
    closed = free_port()
    with (
        StalledBridge("silent", gimp.token) as silent,
        StalledBridge("close", gimp.token) as closing,
    ):
        ports = {
            "no_bridge": str(closed),
            "bad_port": "http",
            "stalled_bridge": str(silent.port),
            "bridge_killed": str(closing.port),
        }
        with ThreadPoolExecutor(len(ports)) as pool:
            futures = {
                name: pool.submit(gimp.run, [name], {"CDS_BRIDGE_PORT": port})
                for name, port in ports.items()
            }
            return {name: future.result()[0][name] for name, future in futures.items()}


def kill_the_running_plugin(home: str, settle: float = 4.0, limit: float = 120) -> None:
    """Wait for the plug-in's ``-run`` process (not GIMP's ``-query`` of it at start-up),
    let it send its edit, then kill it as GIMP's progress cancel does."""
    script = f"{home}/.config/GIMP/3.0/plug-ins/cds_gimp/cds_gimp.py"
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if script.encode() in args and b"-run" in args:
                time.sleep(settle)
                os.kill(int(entry.name), signal.SIGKILL)
                return
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cancel_run(gimp, served_bridge):
    env = {"CDS_BRIDGE_PORT": str(served_bridge[0])}
    return gimp.run(["cancelled"], env, during=kill_the_running_plugin)[0]


# ----------------------------------------------------------------------------- helpers
def unpack(fmt: str, data: bytes) -> list[tuple]:
    """Pixels of a raw dump in the Babl format ``fmt`` (e.g. "R'G'B'A u16-space-...")."""
    model, kind = fmt.split(" ")[0], fmt.split(" ")[1].split("-")[0]
    components = sum(c in "RGBA" for c in model)
    code = {"u8": "B", "u16": "H", "u32": "I", "half": "e", "float": "f", "double": "d"}[kind]
    size = struct.calcsize(code) * components
    return [
        struct.unpack(f"={components}{code}", data[k : k + size]) for k in range(0, len(data), size)
    ]


def edit_pixels(report, out: Path, name: str):
    """(source pixels by layer xy, new pixels by image xy, mask by image xy, new layer)."""
    entry = report[name]
    fmt = entry["source_format"]
    source = unpack(fmt, (out / f"{name}-source.raw").read_bytes())
    new_layer = entry["layers"][1]
    new = unpack(new_layer["format"], (out / f"{name}-new.raw").read_bytes())
    mask = (out / f"{name}-mask.raw").read_bytes()
    (bx, by), (bw, bh) = new_layer["offsets"], new_layer["size"]
    src = {(x, y): source[y * W + x] for y in range(H) for x in range(W)}
    got = {(bx + i, by + j): new[j * bw + i] for j in range(bh) for i in range(bw)}
    sel = {(x, y): mask[y * W + x] for y in range(H) for x in range(W)}
    return src, got, sel, new_layer


def layer_xy(x: int, y: int) -> tuple[int, int]:
    return x - OFFSET[0], y - OFFSET[1]


# ----------------------------------------------------------------------------- registration
def test_registers_under_filters_ai_with_its_arguments(main_run):
    reg = main_run[0]["registration"]
    assert reg["found"] is True
    assert reg["menu_paths"] == ["<Image>/Filters/AI"]
    assert reg["menu_label"] == "CDS _Edit..."
    assert reg["image_types"] == "RGB*"
    assert reg["arguments"][-6:] == ["source", "target", "mode", "steps", "bridge", "fingerprint"]


def test_dialog_mnemonics_are_distinct(gimp):
    """GIMP checks them when the dialog is filled and prints 'duplicate mnemonic ...'."""
    report, _, log = gimp.run([], {}, display=True)
    assert "duplicate mnemonic" not in log, log[-3000:]
    letters = [label[label.index("_") + 1].lower() for label in report["labels"] if "_" in label]
    assert len(letters) == len(set(letters)), report["labels"]
    assert {"Source _prompt", "_Target prompt", "_Mode", "St_eps"} <= set(report["labels"])


# ----------------------------------------------------------------------------- 8-bit
def test_new_layer_sits_above_the_source_at_the_box(main_run):
    report, _ = main_run
    for name, box in (("u8", BOX), ("u8_no_selection", [4, 2, 60, 46])):
        entry = report[name]
        assert entry["status"] == "success", entry["message"]
        assert [layer["name"] for layer in entry["layers"]] == ["Top", "a red dog", "Source"]
        new, source = entry["layers"][1], entry["layers"][2]
        assert new["offsets"] + new["size"] == box, name
        assert source["offsets"] + source["size"] == [4, 2, W, H]  # partly off the canvas


@pytest.mark.parametrize(
    "name",
    ["u8", "u8_no_selection", "u16", "u16_linear_no_alpha", "u16_adobe", "float", "u32", "half"]
    + ["double", "float_feathered"],
)
def test_source_layer_is_never_modified(main_run, name):
    entry = main_run[0][name]
    assert entry["status"] == "success", entry["message"]
    assert entry["source_unchanged"] is True


def test_8bit_result_is_the_source_outside_the_selection_and_edited_inside(main_run):
    src, got, sel, _ = edit_pixels(*main_run, "u8")
    changed = 0
    for (x, y), pixel in got.items():
        if sel[x, y] == 0:
            assert pixel == src[layer_xy(x, y)], (x, y)
        else:
            changed += pixel != src[layer_xy(x, y)]
    assert changed > 0, "the edit changed nothing inside the selection"


def test_without_selection_the_whole_layer_on_the_canvas_is_edited(main_run):
    src, got, _, _ = edit_pixels(*main_run, "u8_no_selection")
    assert len(got) == 60 * 46
    changed = sum(pixel != src[layer_xy(x, y)] for (x, y), pixel in got.items())
    assert changed > len(got) // 2
    assert all(pixel[3] == src[layer_xy(x, y)][3] for (x, y), pixel in got.items())


# ----------------------------------------------------------------------------- high bit depth
@pytest.mark.parametrize(
    "name", ["u16", "u16_linear_no_alpha", "u16_adobe", "float", "u32", "half", "double"]
)
def test_high_bit_depth_keeps_the_exact_source_where_the_mask_is_0(main_run, name):
    """The new layer has the image's format (colour space included); where the selection
    is 0 its pixels are the source's own, bit for bit; alpha is the source's everywhere."""
    report, out = main_run
    entry = report[name]
    assert entry["status"] == "success", entry["message"]
    src, got, sel, new_layer = edit_pixels(report, out, name)
    assert new_layer["format"] == entry["source_format"]
    assert new_layer["offsets"] + new_layer["size"] == BOX
    changed = 0
    for (x, y), pixel in got.items():
        source = src[layer_xy(x, y)]
        if sel[x, y] == 0:
            assert pixel == source, (x, y)
        else:
            changed += pixel[:3] != source[:3]
        if len(pixel) == 4:
            assert pixel[3] == source[3], ("alpha", x, y)
    assert changed > 0, "the edit changed nothing inside the selection"


def test_16bit_edited_pixels_have_8bit_precision(main_run):
    """sRGB-encoded 16-bit: the edit is the model's 8-bit result converted, v8 * 257."""
    src, got, sel, _ = edit_pixels(*main_run, "u16")
    edited = [pixel for xy, pixel in got.items() if sel[xy] == 255]
    assert edited and all(v % 257 == 0 for pixel in edited for v in pixel[:3])
    kept = [pixel for xy, pixel in got.items() if sel[xy] == 0]
    assert any(v % 257 for pixel in kept for v in pixel[:3]), "the pattern has 16-bit values"


def test_float_keeps_values_outside_0_to_1_where_unselected(main_run):
    src, got, sel, _ = edit_pixels(*main_run, "float")
    kept = [pixel for xy, pixel in got.items() if sel[xy] == 0]
    assert max(p[0] for p in kept) > 4.0 and min(p[1] for p in kept) < 0.0
    edited = [pixel for xy, pixel in got.items() if sel[xy] == 255]
    assert edited and all(-1e-6 <= v <= 1.0 + 1e-6 for p in edited for v in p[:3])


def test_float_feathered_selection_blends_the_lost_precision_by_the_mask(main_run):
    """Partly selected: result + (1 - m) * (source - sent) in sRGB-encoded values
    (pixelformat.blend). The red source is 4.0 and more (sent as 1.0) and the result is in
    0..1, so encoded red lies in (1 - m)(encode(S) - 1) + [0, 1]."""
    report, out = main_run
    assert report["float_feathered"]["status"] == "success"
    src, got, sel, _ = edit_pixels(report, out, "float_feathered")
    partial = [(xy, pixel) for xy, pixel in got.items() if 0 < sel[xy] < 255]
    assert len(partial) > 50, "the feathered selection has soft pixels"
    for (x, y), pixel in partial:
        source_red, keep = src[layer_xy(x, y)][0], 1 - sel[x, y] / 255
        low = keep * (float(srgb_encode(source_red)) - 1.0)
        red = float(srgb_encode(pixel[0]))
        assert low - 1e-3 <= red <= low + 1.0 + 1e-3, ((x, y), pixel, sel[x, y])
    for xy, pixel in got.items():
        if sel[xy] == 0:
            assert pixel == src[layer_xy(*xy)], xy


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("gray", "needs an RGB image"),
        ("indexed", "needs an RGB image"),
        ("two_layers", "2 layers are selected"),
        ("channel", "not a layer"),
        ("group", "is a layer group"),
        ("empty_prompt", "target prompt is empty"),
        ("selection_outside", "does not overlap"),
        ("no_token", "no bridge token at"),
        ("wrong_token", "AUTH_FAILED"),
    ],
)
def test_refusals_are_one_line_and_add_nothing(main_run, name, message):
    entry = main_run[0][name]
    assert entry["status"] == "execution-error"
    assert message in entry["message"] and "\n" not in entry["message"]
    assert entry["layers_added"] == 0


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_bridge", "no cds-desktop bridge at 127.0.0.1:"),
        ("bad_port", "$CDS_BRIDGE_PORT='http': expected a port number"),
        ("stalled_bridge", "the bridge stopped answering (no reply to a ping within 10 s)"),
        ("bridge_killed", "closed the connection"),
    ],
)
def test_broken_bridges_are_one_line_and_add_nothing(failure_runs, name, message):
    entry = failure_runs[name]
    assert entry["status"] == "execution-error"
    assert message in entry["message"] and "\n" not in entry["message"]
    assert entry["layers_added"] == 0


def test_killing_the_plugin_mid_edit_adds_nothing_and_frees_the_bridge(cancel_run):
    """GIMP's progress cancel ends the plug-in process; the bridge cancels the job of the
    closed connection, so the next edit runs at once instead of after 2000 steps."""
    killed, after = cancel_run["cancelled"], cancel_run["after_cancel"]
    longer = cancel_run["forty_steps"]
    assert killed["status"] != "success" and killed["layers_added"] == 0, killed
    assert after["status"] == "success" and after["layers_added"] == 1, after
    assert longer["status"] == "success", longer
    per_step = max(0.0, longer["seconds"] - after["seconds"]) / 40
    left = per_step * 2000 - killed["seconds"]  # what the killed job still had to do
    assert after["seconds"] < left / 2, (killed, after, longer)
