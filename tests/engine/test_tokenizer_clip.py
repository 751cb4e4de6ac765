"""The carried CLIP tokenizer files are CLIP's BPE, and tokenise as CLIP's reference code does.

The reference is open-clip-torch's SimpleTokenizer (OpenAI's original code), loaded from the
installed package's files without importing the package (tools/setup.sh installs it for dev).
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import json

import pytest

from cds_desktop.engine.families import load_tokenizer
from cds_desktop.engine.resources import resource_path
from cds_desktop.engine.tokenizer_files import CLIP_VOCAB_SIZE, clip_bpe_to_hf

CARRIED = resource_path("tokenizers", "clip")
# HTML entities are left out: the reference unescapes them ("&amp;" -> "&"), Hugging Face's
# CLIPTokenizer does not (with any vocabulary), so they differ by design of the two libraries.
PROMPTS = [
    "a photo of a cat",
    "A Photo Of A CAT!!",
    "a red circle, on a blue background.",
    "don't stop; it's 3:45pm",
    "café crème brûlée",
    "naïve façade",
    "an astronaut riding a horse on mars, 8k, hdr, trending on artstation",
    "  lots   of\tspaces \n",
    "日本の猫",
    "emoji 🐱🚀",
    "Tom & Jerry",
    "1234567890",
    "a photograph of an astronaut riding a horse",
    "x" * 300,  # truncated to 77 tokens
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
]


def _package_file(name: str):
    try:
        dist = importlib.metadata.distribution("open-clip-torch")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("open-clip-torch is not installed (tools/setup.sh installs it with --no-deps)")
    return dist.locate_file(f"open_clip/{name}")


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location(
        "openclip_tokenizer", _package_file("tokenizer.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SimpleTokenizer(bpe_path=str(_package_file("bpe_simple_vocab_16e6.txt.gz")))


def test_carried_files_are_derived_from_the_package_bpe():
    text = gzip.decompress(_package_file("bpe_simple_vocab_16e6.txt.gz").read_bytes()).decode()
    vocab, merges = clip_bpe_to_hf(text)
    assert len(vocab) == CLIP_VOCAB_SIZE
    assert json.loads((CARRIED / "vocab.json").read_text(encoding="utf-8")) == vocab
    lines = (CARRIED / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("#version") and [tuple(x.split()) for x in lines[1:]] == merges


@pytest.mark.parametrize("which", ["sd1/tokenizer", "sd2-v/tokenizer", "sdxl/tokenizer_2"])
def test_tokenises_like_the_reference_bpe(reference, which):
    tok = load_tokenizer(resource_path("models", "configs", *which.split("/")))
    assert len(tok) == CLIP_VOCAB_SIZE
    for prompt in PROMPTS:
        ref = reference(prompt)[0].tolist()
        ref = ref[: ref.index(reference.eot_token_id) + 1]
        assert tok(prompt, truncation=True, max_length=77).input_ids == ref, prompt


def test_padding_follows_the_family():
    from cds_desktop.engine.models import LoadedModel

    ids = {}
    for which in ("sd1/tokenizer", "sd2-v/tokenizer", "sdxl/tokenizer", "sdxl/tokenizer_2"):
        tok = load_tokenizer(resource_path("models", "configs", *which.split("/")))
        model = LoadedModel.__new__(LoadedModel)
        model.device = "cpu"
        ids[which] = LoadedModel._ids(model, tok, "a cat!").tolist()[0]
        assert len(ids[which]) == 77 and ids[which][:5] == [49406, 320, 2368, 256, 49407]
    assert ids["sd1/tokenizer"][-1] == ids["sdxl/tokenizer"][-1] == 49407  # CLIP ViT-L
    assert ids["sd2-v/tokenizer"][-1] == ids["sdxl/tokenizer_2"][-1] == 0  # OpenCLIP pads with 0
