"""An ``edit`` message validated into a frozen :class:`EditSpec`, and the spec turned into an
engine request.

Validation needs no decoding: the PNG sizes come from their headers, so a spec holds the
compressed uploads until its job starts (:meth:`EditSpec.decode`).

An edit names one ``target`` (every protocol-1 client) or a list of ``targets`` (one shared run,
one result image per target); the per-job pixel budget counts every output image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cds_desktop.engine import EditError, EditSettings
from cds_desktop.engine import jobs as J
from cds_desktop.engine.settings import MODEL_DEFAULTS
from cds_desktop.engine.specs import DEFAULT_VAE_BACKEND
from plugin_bridge import protocol as P

from .images import ImageError, decode_png_array, png_size
from .limits import MAX_META_BYTES, ServerLimits


class RequestError(ValueError):
    """A request the server refuses without closing the connection (``code`` for the reply)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def bad(message: str) -> RequestError:
    return RequestError(P.BAD_REQUEST, message)


@dataclass(frozen=True)
class ModelChoice:
    """Which model the bridge's edits run on (the app changes it with its model picker)."""

    model: str
    device: str = "auto"
    dtype: str = "auto"
    vae_backend: str = DEFAULT_VAE_BACKEND


@dataclass(frozen=True)
class EditSpec:
    job: str
    source: str
    #: the target prompts, in result order (one for a ``target`` edit)
    targets: tuple[str, ...]
    settings: EditSettings
    image_png: bytes = field(repr=False)
    mask_png: bytes | None = field(repr=False)
    width: int
    height: int
    offset: tuple[int, int] = (0, 0)
    meta: dict[str, Any] = field(default_factory=dict, hash=False)
    #: the edit named its prompts in ``targets``: its messages carry ``count`` and its result
    #: ``targets`` and ``images`` (a ``target`` edit gets exactly the protocol-1 messages)
    listed: bool = False
    #: which target's preview the progress messages carry
    preview_target: int = 0
    #: settings the client left to the model (settings.MODEL_DEFAULTS it did not send)
    model_defaults: frozenset[str] = frozenset()

    @property
    def target(self) -> str:
        return self.targets[0]

    @property
    def count(self) -> int:
        return len(self.targets)

    @property
    def upload_bytes(self) -> int:
        """Compressed bytes this job holds while it waits."""
        return len(self.image_png) + len(self.mask_png or b"")

    def decode(self, max_pixels: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The image (RGBA) and mask (L or RGBA) as arrays. Raises ImageError."""
        image = decode_png_array(self.image_png, "image", max_pixels)
        mask = None
        if self.mask_png is not None:
            mask = decode_png_array(self.mask_png, "mask", max_pixels, "mask")
        return image, mask

    def engine_request(
        self,
        image: np.ndarray,
        mask: np.ndarray | None,
        choice: ModelChoice,
        tag: Any,
        origin: str = "client",
    ) -> J.EditRequest:
        return J.EditRequest(
            image=image,
            source_prompt=self.source,
            target_prompt=self.targets[0],
            extra_targets=self.targets[1:],
            model_defaults=self.model_defaults,
            mask=mask,
            settings=self.settings,
            model=choice.model,
            device=choice.device,
            dtype=choice.dtype,
            vae_backend=choice.vae_backend,
            tag=tag,
            origin=origin,
        )


def parse_edit(msg: P.Message, limits: ServerLimits) -> EditSpec:
    """Validate an ``edit`` message (fields, settings, PNG headers). Raises RequestError."""
    if msg.job is None:
        raise bad("an edit needs a job id")
    source = _prompt(msg, "source", limits.max_prompt_chars)
    targets, listed = _targets(msg, limits)
    preview_target = _preview_target(msg.get("preview_target"), len(targets))
    raw_settings = msg.get("settings")
    settings = _settings(raw_settings)
    given = set(raw_settings) if isinstance(raw_settings, dict) else set()
    offset = _offset(msg.get("offset"))
    meta = _meta(msg.get("meta", {}))
    unexpected = set(msg.parts) - {"image", "mask"}
    if unexpected:
        raise bad(f"unexpected payload part(s) {sorted(unexpected)}; expected image, mask")
    if "image" not in msg.parts:
        raise bad("an edit needs an 'image' part (PNG)")
    try:
        width, height = png_size(msg.parts["image"], "image", limits.max_pixels)
        mask_png = msg.parts.get("mask")
        if mask_png is not None:
            mask_size = png_size(mask_png, "mask", limits.max_pixels)
            if mask_size != (width, height):
                raise bad(
                    f"mask is {mask_size[0]}x{mask_size[1]} but the image is {width}x{height}"
                )
    except ImageError as exc:
        raise RequestError(exc.code, exc.message) from None
    outputs = width * height * len(targets)
    if outputs > limits.max_pixels:
        raise RequestError(
            P.TOO_LARGE,
            f"{len(targets)} targets x {width}x{height} = {outputs} output pixels exceeds the "
            f"limit of {limits.max_pixels} per edit; send fewer targets per edit",
        )
    return EditSpec(
        job=msg.job,
        source=source,
        targets=targets,
        settings=settings,
        image_png=msg.parts["image"],
        mask_png=mask_png,
        width=width,
        height=height,
        offset=offset,
        meta=meta,
        listed=listed,
        preview_target=preview_target,
        model_defaults=frozenset(MODEL_DEFAULTS) - given,
    )


def _prompt(msg: P.Message, name: str, max_chars: int) -> str:
    return _prompt_text(msg.get(name), name, max_chars)


def _prompt_text(text: Any, name: str, max_chars: int) -> str:
    if not isinstance(text, str) or not text.strip():
        raise bad(f"{name} must be a non-empty prompt string")
    if len(text) > max_chars:
        raise bad(f"{name} is {len(text)} characters (max {max_chars})")
    return text


def _targets(msg: P.Message, limits: ServerLimits) -> tuple[tuple[str, ...], bool]:
    """(prompts, listed): ``target`` (one prompt) or ``targets`` (a list), never both."""
    if "targets" not in msg:
        return (_prompt(msg, "target", limits.max_prompt_chars),), False
    if "target" in msg:
        raise bad("send either target (one prompt) or targets (a list), not both")
    value = msg["targets"]
    if not isinstance(value, list) or not value:
        raise bad(f"targets={_short(value)}: expected a non-empty list of prompt strings")
    if len(value) > limits.max_targets:
        raise bad(f"{len(value)} targets in one edit (max {limits.max_targets})")
    prompts = tuple(
        _prompt_text(text, f"targets[{i}]", limits.max_prompt_chars) for i, text in enumerate(value)
    )
    return prompts, True


def _preview_target(value: Any, count: int) -> int:
    if value is None:
        return 0
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < count
    if not ok:
        raise bad(f"preview_target={_short(value)}: expected an integer in 0..{count - 1}")
    return value


def _settings(data: Any) -> EditSettings:
    if data is None:
        return EditSettings()
    if not isinstance(data, dict):
        raise bad("settings must be a JSON object of EditSettings fields")
    try:
        return EditSettings.from_dict(data)
    except (EditError, TypeError, ValueError) as exc:
        raise bad(f"settings: {exc}") from None


def _offset(value: Any) -> tuple[int, int]:
    if value is None:
        return (0, 0)
    ok = isinstance(value, list) and len(value) == 2
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if not ok:
        raise bad(f"offset={_short(value)}: expected [x, y] integers")
    return (value[0], value[1])


def _meta(meta: Any) -> dict[str, Any]:
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise bad("meta must be a JSON object")
    size = len(json.dumps(meta, ensure_ascii=False).encode("utf-8"))
    if size > MAX_META_BYTES:
        raise bad(f"meta is {size} bytes of JSON (max {MAX_META_BYTES})")
    return meta


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
