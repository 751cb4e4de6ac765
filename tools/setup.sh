#!/usr/bin/env bash
# Create/refresh the project's virtual environment at .venv (repo root) - CPU PyTorch.
# Idempotent: a second run with an unchanged pyproject/constraints only checks the stamp.
# GPU users: see README "GPU" (install a CUDA torch into .venv first; this script keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.cds-setup-stamp
want=$(cat pyproject.toml tools/constraints.txt tools/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setting up .venv (first run downloads the dependencies; a few minutes)..." >&2
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # pinned: a bare `torch` requirement can pull a multi-GB CUDA build
  .venv/bin/python -m pip install -q "torch==2.13.0"
fi
.venv/bin/python -m pip install -q -c tools/constraints.txt -e ".[app,onnx,dev]"
# CLIP's reference tokenizer for the tokenizer tests, read from the package's files; --no-deps
# because its own dependencies (timm, torchvision) are not needed for that
.venv/bin/python -m pip install -q --no-deps -c tools/constraints.txt open-clip-torch
echo "$want" > "$stamp"
