"""Load-time checks: a model the engine cannot edit with becomes one ModelError line naming the
component at fault (missing or truncated tokenizer, vocabulary too small, text encoder of the
wrong width, unknown ``addition_embed_type``, unsupported prediction type)."""

from __future__ import annotations

import json
from pathlib import Path

from . import specs
from .conditioning import ADDITION_EMBED_TYPES, PREDICTION_TYPES, uses_added_conditioning
from .errors import ModelError

#: a CLIP byte-level BPE has at least its 256 byte tokens, their end-of-word forms and 2 specials
MIN_VOCAB = 2 * 256 + 2
PROBE_PROMPTS = ("a red circle", "a blue square")


def precheck_folder(path: Path) -> None:
    """Refuse, before loading weights, what validate_components would refuse after."""
    for sub, name, key, allowed in (
        ("unet", "config.json", "addition_embed_type", ADDITION_EMBED_TYPES),
        ("scheduler", "scheduler_config.json", "prediction_type", PREDICTION_TYPES),
    ):
        f = path / sub / name
        try:
            value = json.loads(f.read_text(encoding="utf-8")).get(key, allowed[0])
        except (OSError, ValueError):
            continue  # a missing/unreadable config is reported by the component's loader
        if value not in allowed:
            shown = ", ".join(repr(a) for a in allowed)
            raise ModelError(
                f"model {path}: {sub}/{name}: {key} {value!r} is not supported ({shown})"
            )


def check_tokenizer_folder(folder: Path) -> None:
    """A local tokenizer must be a folder with vocab.json + merges.txt (or tokenizer.json)."""
    model = folder.parent
    hint = f"copy it from the model's source (`{specs.HF_CLI} download <repo> --include '{folder.name}/*' --local-dir {model}`)"
    if not folder.is_dir():
        raise ModelError(
            f"model {model}: the tokenizer is missing (no {folder.name}/ folder); {hint}"
        )
    has_bpe = all(
        (folder / n).is_file() and (folder / n).stat().st_size > 0
        for n in ("vocab.json", "merges.txt")
    )
    has_fast = (folder / "tokenizer.json").is_file() and (
        folder / "tokenizer.json"
    ).stat().st_size > 0
    if not (has_bpe or has_fast):
        raise ModelError(
            f"model {model}: {folder.name}/ has no vocab.json and merges.txt (an empty or "
            f"incomplete tokenizer); {hint}"
        )


def validate_components(parts: dict, where: str) -> None:
    """One ModelError line for a model the engine cannot edit with (see module doc)."""
    unet, scheduler = parts["unet"], parts["scheduler"]
    add = getattr(unet.config, "addition_embed_type", None)
    if add not in ADDITION_EMBED_TYPES:
        raise ModelError(
            f"model {where}: the UNet's addition_embed_type {add!r} is not supported "
            "(supported: none for SD-1.x/2.x, 'text_time' for SDXL)"
        )
    pred = scheduler.config.prediction_type
    if pred not in PREDICTION_TYPES:
        raise ModelError(
            f"model {where}: scheduler prediction_type {pred!r} is not supported "
            f"(supported: {', '.join(PREDICTION_TYPES)})"
        )
    encoders = [("text_encoder", "tokenizer")]
    if uses_added_conditioning(unet):
        if parts.get("text_encoder_2") is None or parts.get("tokenizer_2") is None:
            raise ModelError(
                f"model {where}: an SDXL UNet needs text_encoder_2 and tokenizer_2, which are missing"
            )
        encoders.append(("text_encoder_2", "tokenizer_2"))
    width = 0
    for enc_name, tok_name in encoders:
        enc, tok = parts[enc_name], parts[tok_name]
        _check_tokenizer(tok, enc, f"model {where}: {tok_name}")
        width += enc.config.hidden_size
    expected = unet.config.cross_attention_dim
    if width != expected:
        names = " + ".join(e for e, _ in encoders)
        raise ModelError(
            f"model {where}: wrong text-embedding width: {names} give {width} features but the "
            f"UNet's cross-attention expects {expected} (mixed components from different models?)"
        )


def _check_tokenizer(tok, encoder, what: str) -> None:
    size = len(tok)
    positions = encoder.config.max_position_embeddings
    if not 0 < int(getattr(tok, "model_max_length", 0) or 0) <= positions:
        raise ModelError(
            f"{what}: model_max_length {getattr(tok, 'model_max_length', None)} does not fit the "
            f"text encoder's {positions} positions (missing tokenizer_config.json?)"
        )
    if size < MIN_VOCAB:
        raise ModelError(
            f"{what}: vocabulary too small ({size} tokens; a CLIP tokenizer has 49408): "
            "vocab.json/merges.txt are missing or truncated"
        )
    if size > encoder.config.vocab_size:
        raise ModelError(
            f"{what}: {size} tokens but the text encoder embeds only {encoder.config.vocab_size} "
            "(tokenizer and text encoder are from different models)"
        )
    a, b = (tok(p).input_ids for p in PROBE_PROMPTS)
    if a == b:
        raise ModelError(f"{what}: different prompts tokenise identically (a broken vocabulary)")
