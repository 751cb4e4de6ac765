"""The edit controller: prompt-panel snapshot + active layer -> one job -> result layers.

:class:`EditController` is a QObject without widgets. It owns the :class:`EditWorker`, checks
everything it can *before* a job is queued (an image, both prompts, the fields, the mask),
maps the live preview of a running job back to document coordinates, and turns the results
into layers through :class:`DocumentState` (so they undo like any other change). The main
window only wires its signals to the canvas, the panels and the status bar.

Several target prompts are one job with one result per target (the engine shares the source
branch between them); every result becomes its own layer.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PyQt6.QtCore import QObject, QRectF, pyqtSignal

from cds_desktop.engine.errors import EditError
from cds_desktop.engine.jobs import EditRequest, EventKind, FailureKind, JobQueue
from cds_desktop.engine.settings import EditSettings

from .documents import Document, Layer
from .state import DocumentState
from .widgets.history import HistoryEntry
from .worker import EditWorker, JobRecord, Update

log = logging.getLogger(__name__)

#: EditRequest.origin of the app's own jobs (plug-in jobs carry their client's name)
APP_ORIGIN = "app"


@dataclass(frozen=True)
class EditInputs:
    """What the prompt panel says when Edit is pressed (settings already validated)."""

    source_prompt: str
    target_prompts: tuple[str, ...]
    settings: EditSettings
    model: str


@dataclass(frozen=True)
class LayerTag:
    """EditRequest.tag of the app's jobs: which document and layer the edit belongs to."""

    doc_uid: int
    layer_uid: int


class EditController(QObject):
    """Owns the worker; emits what the window shows. Answers questions through callables."""

    error = pyqtSignal(str)  # one line for the error banner
    status = pyqtSignal(str)  # a short status-bar message
    previewChanged = pyqtSignal(object, QRectF, object)  # rgb, document rect, mask crop
    previewCleared = pyqtSignal()
    targetsChanged = pyqtSignal(list)  # target prompts of the running app job ([] when none)
    historyAdded = pyqtSignal(object)  # HistoryEntry
    deviceChanged = pyqtSignal(str)

    def __init__(
        self,
        state: DocumentState,
        queue: JobQueue | None = None,
        parent: QObject | None = None,
        engine_options: Callable[[], dict] | None = None,
    ) -> None:
        super().__init__(parent)
        self.state = state
        self.worker = EditWorker(queue, self)
        #: device / vae_backend for the next request (the window reads its preferences)
        self.engine_options = engine_options or dict
        #: asked when the active layer's mask is empty; True = edit the whole layer
        self.ask_whole_layer: Callable[[Layer], bool] = lambda _layer: False
        self.last_history_id = 0  # history ids are unique within a document's history
        #: the device the last edit ran on ("" before the first edit)
        self.device_in_use = ""
        self._running: int | None = None  # the app job whose preview is shown
        self.worker.started.connect(self._on_started)
        self.worker.progressed.connect(self._on_progress)
        self.worker.finished.connect(self._on_finished)

    # ------------------------------------------------------------------ requests
    def start(self, inputs: EditInputs) -> int | None:
        """Queue one edit of the active layer; returns its job id, or None when refused.

        Everything that can be checked here is, so a refusal is one message and nothing is
        queued.
        """
        try:
            layer = self._check(inputs)
        except EditError as exc:
            self.error.emit(str(exc))
            return None
        mask = layer.mask.copy() if layer.has_mask else None
        if mask is None and not self.ask_whole_layer(layer):
            self.status.emit("edit not started: paint the area to edit on the mask")
            return None
        first, *extra = inputs.target_prompts
        options = self.engine_options()
        request = EditRequest(
            image=layer.pixels.copy(),
            source_prompt=inputs.source_prompt,
            target_prompt=first,
            extra_targets=tuple(extra),
            mask=mask,
            settings=inputs.settings,
            model=inputs.model,
            device=options.get("device", "auto"),
            vae_backend=options.get("vae_backend", "auto"),
            tag=LayerTag(self.state.doc.uid, layer.uid),
            origin=APP_ORIGIN,
        )
        return self.worker.submit(request)

    def _check(self, inputs: EditInputs) -> Layer:
        layer = self.state.active_layer
        if layer is None:
            raise EditError("open an image first (File > Open or drop a file on the window)")
        if not inputs.source_prompt.strip():
            raise EditError("the source prompt is empty: describe what the image shows now")
        if not inputs.target_prompts or not all(t.strip() for t in inputs.target_prompts):
            raise EditError("the target prompt is empty: describe what the image should become")
        return layer

    # ------------------------------------------------------------------ preview selection
    @property
    def preview_index(self) -> int:
        return self.worker.preview_index

    def set_preview_index(self, index: int) -> None:
        """Which target of a several-target job the live preview shows."""
        self.worker.preview_index = max(0, int(index))

    def note_history_id(self, history_id: int) -> None:
        """A history entry with this id exists (a reopened .ora): new ids come after it."""
        self.last_history_id = max(self.last_history_id, int(history_id))

    def cancel_all(self) -> None:
        self.worker.cancel_all()

    def shutdown(self) -> None:
        self.worker.shutdown()

    # ------------------------------------------------------------------ events
    def _on_started(self, job_id: int, _label: str, device: str) -> None:
        record = self.worker.record(job_id)
        if record is None:
            return
        self._running = job_id
        self.set_preview_index(0)
        self.targetsChanged.emit(list(record.request.target_prompts))
        if device:
            self.device_in_use = device
            self.deviceChanged.emit(device)

    def _on_progress(self, update: Update) -> None:
        record = self.worker.record(update.job_id)
        if update.preview is None or record is None or update.box is None:
            return
        layer = self._layer_of(record.request)
        if layer is None:
            return
        rect, crop = preview_placement(layer, update.box, record.request.mask)
        self.previewChanged.emit(update.preview, rect, crop)

    def _on_finished(self, update: Update, record: JobRecord) -> None:
        if update.job_id == self._running:
            self._running = None
            self.previewCleared.emit()
            self.targetsChanged.emit([])
        if update.kind is EventKind.DONE:
            self._add_results(update, record.request)
        elif update.kind is EventKind.FAILED:
            prefix = "model error" if update.failure is FailureKind.MODEL else "edit failed"
            self.error.emit(f"{prefix}: {update.error}")
        else:
            self.status.emit(f"cancelled ({update.message})")

    # ------------------------------------------------------------------ results
    def _layer_of(self, request: EditRequest) -> Layer | None:
        tag, doc = request.tag, self.state.doc
        if not isinstance(tag, LayerTag) or doc is None or doc.uid != tag.doc_uid:
            return None
        return doc.layer(tag.layer_uid)

    def _add_results(self, update: Update, request: EditRequest) -> None:
        source = self._layer_of(request)
        if source is None:
            self.error.emit("an edit finished after its image or layer was closed; result dropped")
            return
        results = update.results or ((update.result,) if update.result is not None else ())
        added = []
        for target, result in zip(request.target_prompts, results, strict=False):
            self.last_history_id += 1
            history_id = self.last_history_id
            layer = Layer(
                name=unique_name(self.state.doc, f"{target} (seed {request.settings.seed})"),
                pixels=result.image,
                x=source.x,
                y=source.y,
                # the mask that made it, so the next Edit on this result edits the same area
                mask=None if request.mask is None else request.mask.copy(),
                source_uid=source.uid,
                history_id=history_id,
            )
            self.state.add_layer(layer, result_index(self.state.doc, source), f"Edit: {layer.name}")
            added.append(layer.name)
            self.historyAdded.emit(
                HistoryEntry(
                    id=history_id,
                    source_prompt=request.source_prompt,
                    target_prompt=target,
                    settings=request.settings.to_dict(),
                    model=result.model_label,
                    elapsed=result.elapsed,
                    layer_uid=layer.uid,
                    thumbnail=result.region,
                )
            )
        if added:
            self.status.emit(f"{', '.join(added)}: {update.message}")


# ----------------------------------------------------------------------------- placement
def preview_placement(
    layer: Layer, box: tuple[int, int, int, int], mask: np.ndarray | None
) -> tuple[QRectF, np.ndarray | None]:
    """A preview of ``box`` (layer pixels) -> its rectangle in the document and the mask
    crop that limits it."""
    x0, y0, x1, y1 = box
    crop = None if mask is None else mask[y0:y1, x0:x1]
    return QRectF(layer.x + x0, layer.y + y0, x1 - x0, y1 - y0), crop


def root_uid(doc: Document, layer: Layer) -> int:
    """The original layer a chain of results comes from (a result of a result ...)."""
    seen = {layer.uid}
    while layer.source_uid is not None:
        parent = doc.layer(layer.source_uid)
        if parent is None or parent.uid in seen:
            break
        seen.add(parent.uid)
        layer = parent
    return layer.uid


def result_index(doc: Document, source: Layer) -> int:
    """Where a new result of ``source`` goes: directly above it and above the results already
    stacked there (results of the same original), so the newest result is the one on top."""
    root = root_uid(doc, source)
    layers = doc.layers
    index = layers.index(source) + 1
    while (
        index < len(layers)
        and layers[index].source_uid is not None
        and root_uid(doc, layers[index]) == root
    ):
        index += 1
    return index


def unique_name(doc: Document, name: str) -> str:
    """``name``, or ``name #2``, ``name #3`` ... when a layer already has it."""
    taken = {layer.name for layer in doc.layers}
    if name not in taken:
        return name
    return next(f"{name} #{n}" for n in itertools.count(2) if f"{name} #{n}" not in taken)
