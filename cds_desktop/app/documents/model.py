"""The layered document, Qt-free: layers with names, offsets, opacity, visibility and a mask.

A layer's ``mask`` belongs to it: a (H, W) uint8 array the size of the layer's pixels
(0 = keep, 255 = edit). Pixels are (H, W, 4) uint8 RGBA, straight (not premultiplied) alpha.
Layers are stored bottom to top.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

_uids = itertools.count(1)


def new_uid() -> int:
    return next(_uids)


@dataclass(eq=False)
class Layer:
    name: str
    pixels: np.ndarray  # (H, W, 4) uint8 RGBA
    x: int = 0
    y: int = 0
    opacity: float = 1.0
    visible: bool = True
    mask: np.ndarray | None = None  # (H, W) uint8; created on demand
    uid: int = field(default_factory=new_uid)
    #: where an edit result came from (source layer uid) and its history entry id
    source_uid: int | None = None
    history_id: int | None = None

    def __post_init__(self) -> None:
        if self.pixels.ndim != 3 or self.pixels.shape[2] != 4 or self.pixels.dtype != np.uint8:
            raise ValueError(f"layer pixels must be (H, W, 4) uint8, got {self.pixels.shape}")
        if self.mask is None:
            self.mask = np.zeros(self.pixels.shape[:2], np.uint8)

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def has_mask(self) -> bool:
        return bool(self.mask is not None and self.mask.any())


@dataclass(eq=False)
class EditRecord:
    """One finished edit, as the History lists it (kept in the .ora with the document)."""

    id: int
    source_prompt: str
    target_prompt: str
    settings: dict[str, Any]  # the request's settings (None = model default kept)
    model: str
    elapsed: float
    layer_uid: int | None = None  # the result layer
    thumbnail: np.ndarray | None = field(default=None, repr=False)  # (h, w, 3) uint8


@dataclass(eq=False)
class Document:
    width: int
    height: int
    layers: list[Layer] = field(default_factory=list)  # bottom -> top
    #: the .ora file this document was loaded from / saved to (Save writes here)
    path: Path | None = None
    #: the file it was opened from (a PNG/JPEG/... is never overwritten by Save)
    source_path: Path | None = None
    #: the active layer (set by the app; written/read as stack.xml's ``selected``)
    active_uid: int | None = None
    uid: int = field(default_factory=new_uid)
    #: the edits that made this document's result layers, oldest first
    history: list[EditRecord] = field(default_factory=list)

    def index_of(self, uid: int) -> int:
        for i, layer in enumerate(self.layers):
            if layer.uid == uid:
                return i
        raise KeyError(f"no layer with uid {uid}")

    def layer(self, uid: int) -> Layer | None:
        for layer in self.layers:
            if layer.uid == uid:
                return layer
        return None

    @property
    def title(self) -> str:
        where = self.path or self.source_path
        return where.name if where else "untitled"

    def snapshot(self) -> Document:
        """A copy that later edits of this document cannot change, for writing it on another
        thread: masks are copied (painting changes them in place); pixel arrays are shared
        (they are never modified, a change replaces the array)."""
        layers = [replace(layer, mask=layer.mask.copy()) for layer in self.layers]
        return replace(self, layers=layers, history=list(self.history))

    def unique_name(self, name: str, skip: int | None = None) -> str:
        """``name``, or ``name #2``, ``name #3``... when another layer (not ``skip``) has it."""
        taken = {layer.name for layer in self.layers if layer.uid != skip}
        if name not in taken:
            return name
        n = 2
        while f"{name} #{n}" in taken:
            n += 1
        return f"{name} #{n}"


def flatten(doc: Document, skip: set[int] | None = None) -> np.ndarray:
    """Composite the visible layers (src-over, straight alpha) -> (H, W, 4) uint8."""
    h, w = doc.height, doc.width
    color = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w, 1), np.float32)
    for layer in doc.layers:
        if not layer.visible or layer.opacity <= 0 or (skip and layer.uid in skip):
            continue
        clip = _clip(layer, w, h)
        if clip is None:
            continue
        (dy0, dy1, dx0, dx1), (sy0, sy1, sx0, sx1) = clip
        src = layer.pixels[sy0:sy1, sx0:sx1].astype(np.float32) / 255.0
        a_s = src[..., 3:4] * float(layer.opacity)
        a_d = alpha[dy0:dy1, dx0:dx1]
        out_a = a_s + a_d * (1 - a_s)
        num = src[..., :3] * a_s + color[dy0:dy1, dx0:dx1] * a_d * (1 - a_s)
        color[dy0:dy1, dx0:dx1] = np.where(out_a > 0, num / np.maximum(out_a, 1e-12), 0)
        alpha[dy0:dy1, dx0:dx1] = out_a
    out = np.concatenate([color, alpha], axis=2)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def _clip(layer: Layer, w: int, h: int):
    """Destination and source slices of the layer's overlap with the canvas, or None."""
    dx0, dy0 = max(0, layer.x), max(0, layer.y)
    dx1, dy1 = min(w, layer.x + layer.width), min(h, layer.y + layer.height)
    if dx1 <= dx0 or dy1 <= dy0:
        return None
    sx0, sy0 = dx0 - layer.x, dy0 - layer.y
    return (dy0, dy1, dx0, dx1), (sy0, sy0 + dy1 - dy0, sx0, sx0 + dx1 - dx0)
