# Sourced by benchmarks/device_speed.sh and device_train_quality.sh: the options they share.
# Every option is an environment variable with a default (benchmarks/README.md):
#   OUT      folder for the results (default: benchmarks/out/cuda-<date-time>; created)
#   PYTHON   interpreter with the project's dependencies (default: .venv/bin/python, or
#            .venv/Scripts/python.exe, else python3)
#   WHEELS   a folder of .whl files to install first, for a machine without the dependencies
#            and without network (default: none); they go into SITE, not into PYTHON's packages
#   SITE     where WHEELS are installed (default: $TMPDIR/cds-bench-site; reused if present)
#   CDS_CACHE_DIR  the engine's cache, e.g. the ONNX VAE export (default: $TMPDIR/cds-bench-cache)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TMPDIR=${TMPDIR:-/tmp}
OUT=${OUT:-benchmarks/out/cuda-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python
  elif [ -x .venv/Scripts/python.exe ]; then PYTHON=.venv/Scripts/python.exe
  else PYTHON=python3; fi
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 CDS_CACHE_DIR=${CDS_CACHE_DIR:-$TMPDIR/cds-bench-cache}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "${WHEELS:-}" ]; then
  SITE=${SITE:-$TMPDIR/cds-bench-site}
  [ -d "$SITE" ] || "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target "$SITE" "$WHEELS"/*.whl || exit 1
  export PYTHONPATH="$SITE:$PYTHONPATH"
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"
  "$PYTHON" -c "import sys, torch, diffusers, transformers; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)"
} | tee "$OUT/gpu.txt"
echo "results: $OUT"
