"""Derive resources/tokenizers/clip/{vocab.json,merges.txt} from open-clip-torch's CLIP BPE.

    pip install --no-deps open-clip-torch==3.3.0
    python tools/derive_clip_tokenizer.py            # rewrites resources/tokenizers/clip
    python tools/derive_clip_tokenizer.py --check    # exit 1 if the carried files differ

The BPE merge list ``open_clip/bpe_simple_vocab_16e6.txt.gz`` (MIT, OpenAI) is read from the
installed package's files without importing the package (whose dependencies are not needed).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cds_desktop.engine.tokenizer_files import clip_bpe_to_hf, write_hf_files  # noqa: E402

OUT = ROOT / "resources" / "tokenizers" / "clip"


def bpe_file() -> Path:
    dist = importlib.metadata.distribution("open-clip-torch")
    return Path(dist.locate_file("open_clip/bpe_simple_vocab_16e6.txt.gz"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args()
    vocab, merges = clip_bpe_to_hf(gzip.decompress(bpe_file().read_bytes()).decode("utf-8"))
    if not args.check:
        write_hf_files(OUT, vocab, merges)
        print(f"wrote {OUT} ({len(vocab)} tokens, {len(merges)} merges)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        write_hf_files(tmp, vocab, merges)
        same = all(
            (Path(tmp) / n).read_bytes() == (OUT / n).read_bytes()
            for n in ("vocab.json", "merges.txt")
        )
    print("carried tokenizer files match the package" if same else "carried files DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
