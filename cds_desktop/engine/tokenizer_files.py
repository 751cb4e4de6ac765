"""Make CLIP tokenizer files (vocab.json + merges.txt) locally, with no download.

The vocabulary always holds the byte-level base alphabet (so any text tokenizes) and,
for every word in ``words``, merges that make that word exactly one token. The merges are
found by simulating CLIP's BPE: while a word still splits into several tokens, append a merge
for its first pair. A new merge has the highest rank, so it never changes how earlier words
tokenize (each of their steps still finds a lower-ranked merge to apply).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"


@lru_cache(maxsize=1)
def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins CLIP's byte-level BPE uses for bytes (GPT-2 convention)."""
    keep = list(range(ord("!"), ord("~") + 1))
    keep += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def _word_symbols(word: str) -> list[str]:
    table = _byte_alphabet()
    symbols = [table[b] for b in word.encode("utf-8")]
    symbols[-1] += "</w>"
    return symbols


def _apply_bpe(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    while len(symbols) > 1:
        pairs = [(ranks.get((a, b)), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:]))]
        ranked = [(r, i) for r, i in pairs if r is not None]
        if not ranked:
            break
        best = min(ranked)[0]
        merged: list[str] = []
        i = 0
        while i < len(symbols):
            if i + 1 < len(symbols) and ranks.get((symbols[i], symbols[i + 1])) == best:
                merged.append(symbols[i] + symbols[i + 1])
                i += 2
            else:
                merged.append(symbols[i])
                i += 1
        symbols = merged
    return symbols


def build_vocab(words: Iterable[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Return (vocab, merges) in which every word of ``words`` is a single token."""
    base = _byte_alphabet()
    tokens = list(base) + [c + "</w>" for c in base]
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in dict.fromkeys(w.lower() for w in words if w.strip()):
        symbols = _apply_bpe(_word_symbols(word), ranks)
        while len(symbols) > 1:
            pair = (symbols[0], symbols[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            tokens.append(pair[0] + pair[1])
            symbols = _apply_bpe(symbols, ranks)
    tokens += [BOS, EOS]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    return vocab, merges


def write_clip_tokenizer(folder: str | Path, words: Iterable[str], max_length: int = 77) -> Path:
    """Write a CLIPTokenizer-loadable folder (vocab.json, merges.txt, tokenizer_config.json)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = build_vocab(words)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    return folder


# ----------------------------------------------------------------------------- real CLIP BPE
#: How many merges of the published BPE file CLIP uses (its vocabulary is 49408 tokens:
#: 256 bytes, 256 end-of-word bytes, 48894 merges, 2 special tokens).
CLIP_MERGES = 49152 - 256 - 2
CLIP_VOCAB_SIZE = 49408


def clip_bpe_to_hf(bpe_text: str) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Turn CLIP's published BPE merge list (``bpe_simple_vocab_16e6.txt``, as shipped by
    open-clip-torch) into Hugging Face's ``vocab.json`` mapping and ``merges.txt`` pairs.

    Token ids follow CLIP's reference tokenizer: the 256 byte stand-ins (in the GPT-2 table's
    order), the same with ``</w>``, one token per merge in rank order, then the start and end
    tokens (named ``<|startoftext|>`` / ``<|endoftext|>`` as in Hugging Face's files).
    """
    lines = bpe_text.split("\n")[1 : CLIP_MERGES + 1]  # line 0 is a version header
    merges = [tuple(line.split()) for line in lines]
    if len(merges) != CLIP_MERGES or any(len(m) != 2 for m in merges):
        raise ValueError(f"not CLIP's BPE merge list: expected {CLIP_MERGES} pairs")
    base = list(gpt2_byte_table().values())
    tokens = base + [c + "</w>" for c in base] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise ValueError(f"derived {len(vocab)} tokens, expected {CLIP_VOCAB_SIZE}")
    return vocab, merges


def gpt2_byte_table() -> dict[int, str]:
    """byte -> printable stand-in, in the order CLIP's reference code builds it (printable
    bytes first, then the rest mapped to 256 + n). Ids of the base vocabulary follow this order."""
    table = _byte_alphabet()
    keep = [b for b in range(256) if table[b] == chr(b)]
    rest = [b for b in range(256) if table[b] != chr(b)]
    return {b: table[b] for b in keep + rest}


def write_hf_files(folder: str | Path, vocab: dict[str, int], merges) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` in Hugging Face's CLIP format."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder
