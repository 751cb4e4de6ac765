"""One edit from Krita through the bridge, driven by polling so Krita never blocks.

``EditSession.start()`` reads the layer (see :mod:`.logic`), encodes PNGs and submits the job;
the docker then calls ``poll()`` from a QTimer: it reads whatever messages have arrived
without waiting, and on the result inserts the new layer. No Qt here: the same object runs
in the docker, in kritarunner tests and in unit tests with a fake document and client.

The docker reads the layer on the GUI thread (``prepare()``: Krita's API) but connects and
submits through :func:`submit_in_background`, on a worker thread: a refused or stalled connect
(about 2 s on Windows, up to NETWORK_TIMEOUT for a port that accepts but never answers)
never freezes Krita.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

from .cds_bridge import client as bridge_client
from .cds_bridge import plugin_common as common
from .cds_bridge import pngcodec
from .cds_bridge import protocol as proto
from .cds_bridge.plugin_common import NETWORK_TIMEOUT, bridge_address, pinned_note  # noqa: F401
from .logic import (
    Crop,
    EditParams,
    KritaDocument,
    KritaNode,
    PluginError,
    check_params,
    insert_result,
    layer_name,
    read_crop,
)

log = logging.getLogger(__name__)

CLIENT_NAME = "cds-krita"
#: Most messages handled per poll, so one timer tick stays short.
MAX_MESSAGES_PER_POLL = 32

RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"


@dataclass(frozen=True)
class Update:
    """What the docker shows after a poll."""

    text: str
    fraction: float | None = None  # 0..1; None = unknown (busy indicator)
    finished: bool = False
    ok: bool = False


def make_client(
    timeout: float = NETWORK_TIMEOUT, address: str = "", fingerprint: str = "", token: str = ""
) -> bridge_client.BridgeClient:
    """A client for the bridge at ``address`` (HOST[:PORT]; empty: $CDS_BRIDGE_HOST/_PORT or
    this computer), see :func:`plugin_common.make_client`."""
    return common.make_client(CLIENT_NAME, timeout, address, fingerprint, token)


def user_message(exc: BaseException) -> str:
    """One line for the status label, never a traceback."""
    if isinstance(exc, (PluginError, bridge_client.BridgeError, pngcodec.PngError)):
        return str(exc)
    return f"unexpected error: {type(exc).__name__}: {exc}"


class EditSession:
    """Submit one edit and, when its result arrives, insert it above the source layer."""

    def __init__(self, doc: KritaDocument, node: KritaNode, params: EditParams) -> None:
        self.doc, self.node, self.params = doc, node, params
        self.client: Any = None
        self.state = RUNNING
        self.job: str | None = None
        self.crop: Crop | None = None
        self.new_layer: KritaNode | None = None
        #: The bridge's 8-bit RGBA answer for the box (before compositing at the layer's depth).
        self.result_rgba: bytes | None = None
        self.error: str | None = None
        self._pngs: tuple[bytes, bytes | None] | None = None

    # ------------------------------------------------------------------ start / cancel
    def prepare(self) -> None:
        """Check and read everything locally (no connection yet). Raises PluginError."""
        check_params(self.params)
        crop = read_crop(self.doc, self.node)
        box = crop.box
        image_png = pngcodec.encode_png(box.width, box.height, crop.rgba, channels=4)
        mask_png = None
        if crop.mask is not None:
            mask_png = pngcodec.encode_png(box.width, box.height, crop.mask, channels=1)
        self.crop, self._pngs = crop, (image_png, mask_png)

    def submit(self, client: Any) -> Update:
        """Send the prepared edit through a connected client. Raises BridgeError."""
        if self.crop is None:
            self.prepare()
        box, (image_png, mask_png) = self.crop.box, self._pngs
        self.client = client
        self.job = client.submit_edit(
            image_png,
            self.params.source,
            self.params.target,
            mask_png=mask_png,
            settings=self.params.settings(),
            meta={"layer": self.crop.layer_name, "box": list(box)},
            offset=(box.left, box.top),
        )
        log.info("submitted job %s: %dx%d at (%d, %d)", self.job, *box[2:], *box[:2])
        return Update(f"sent {box.width}x{box.height} pixels of '{self.crop.layer_name}'")

    def start(self, client: Any) -> Update:
        """prepare() + submit()."""
        self.prepare()
        return self.submit(client)

    def cancel(self) -> None:
        if self.state == RUNNING and self.job is not None:
            self.client.cancel(self.job)

    # ------------------------------------------------------------------ polling
    def poll(self) -> Update | None:
        """Handle the messages that have arrived (never waits). None if there were none."""
        update = None
        for _ in range(MAX_MESSAGES_PER_POLL):
            if self.state != RUNNING:
                break
            try:
                msg = self.client.poll(0)
            except bridge_client.BridgeError as exc:
                return self._fail(str(exc))
            if msg is None:
                break
            update = self.handle(msg) or update
        return update

    def handle(self, msg: Any) -> Update | None:
        """React to one message; messages of other jobs are ignored."""
        if msg.job != self.job:
            return None
        if msg.type == proto.QUEUED:
            return Update(f"queued (position {msg.get('position', '?')})")
        if msg.type == proto.PROGRESS:
            return _progress_update(msg)
        if msg.type == proto.RESULT:
            return self._finish(msg)
        if msg.type == proto.ERROR:
            if msg.get("code") == proto.CANCELLED:
                self.state = CANCELLED
                return Update("cancelled", finished=True)
            return self._fail(f"{msg.get('code', 'ERROR')}: {msg.get('message', '')}")
        return None

    def _finish(self, msg: Any) -> Update:
        try:
            self.new_layer = self._insert(msg.parts.get("image", b""))
        except (PluginError, pngcodec.PngError) as exc:
            return self._fail(user_message(exc))
        self.state = DONE
        seconds = msg.get("elapsed")
        took = f" in {float(seconds):.1f} s" if isinstance(seconds, (int, float)) else ""
        return Update(f"done{took}: new layer '{self.new_layer.name()}'", 1.0, True, True)

    def _insert(self, png: bytes) -> KritaNode:
        box = self.crop.box
        image = pngcodec.decode_png(png)
        if (image.width, image.height) != (box.width, box.height):
            raise PluginError(
                f"the result is {image.width}x{image.height}, expected {box.width}x{box.height}"
            )
        name = layer_name(self.params.target)
        self.result_rgba = image.rgba
        return insert_result(self.doc, self.node, self.crop, image.rgba, name)

    def _fail(self, text: str) -> Update:
        self.state, self.error = FAILED, text
        log.warning("edit failed: %s", text)
        return Update(text, finished=True)


class Background:
    """``work()`` on a worker thread, so Krita's GUI thread never waits on the network.

    The GUI thread starts it and asks :meth:`done` from a QTimer; once done, :meth:`outcome`
    returns what ``work`` returned or raises what it raised, and whatever ``work`` used
    belongs to the GUI thread again. :meth:`abandon` (Cancel, the docker closing) lets the
    GUI go on at once: ``cleanup`` then runs when the work ends (at once if it has ended), on
    the thread that finds it ended, so a client is only ever used by one thread at a time.
    """

    def __init__(self, work: Callable[[], Any], cleanup: Callable[[], Any] | None = None):
        self._work, self._cleanup = work, cleanup
        self._lock = threading.Lock()
        self._done = self._abandoned = False
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="cds-krita-network", daemon=True)

    def start(self) -> Background:
        self._thread.start()
        return self

    def _run(self) -> None:
        value, error = None, None
        try:
            value = self._work()
        except Exception as exc:  # handed to the GUI thread by outcome()
            error = exc
        with self._lock:
            self._value, self._error, self._done = value, error, True
            abandoned = self._abandoned
        if abandoned and self._cleanup is not None:
            self._cleanup()

    def done(self) -> bool:
        with self._lock:
            return self._done

    def outcome(self) -> Any:
        """What ``work`` returned, or its exception raised; only once :meth:`done`."""
        with self._lock:
            if not self._done:
                raise RuntimeError("the background work is still running")
            if self._error is not None:
                raise self._error
            return self._value

    def abandon(self) -> None:
        """Stop caring about the outcome; run ``cleanup`` now if the work has ended, else
        when it ends."""
        with self._lock:
            self._abandoned = True
            finished = self._done
        if finished and self._cleanup is not None:
            self._cleanup()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the work ends (tests); True if it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


def submit_in_background(session: EditSession, client: Any) -> Background:
    """``client.connect()`` and ``session.submit(client)`` on a worker thread; the outcome
    is the submit's Update. Abandoned, the worker closes the client (the server then
    cancels the job)."""

    def work() -> Update:
        client.connect()
        return session.submit(client)

    return Background(work, cleanup=client.close).start()


def ping_in_background() -> Background:
    """Connect to the bridge and ping it on a worker thread; the outcome is the seconds the
    round trip took."""

    def work() -> float:
        with make_client() as client:
            return client.ping()

    return Background(work).start()


def _progress_update(msg: Any) -> Update:
    step, total = msg.get("step"), msg.get("total")
    if msg.get("stage") == "loading" or not total:
        return Update(str(msg.get("message") or "loading the model"))
    fraction = max(0.0, min(1.0, float(step or 0) / float(total)))
    return Update(f"step {step}/{total}", fraction)
