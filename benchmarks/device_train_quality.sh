#!/usr/bin/env bash
# Device call 1 (GPU box): train the demo model with the gpu profile, then run the quality
# benchmark on it. Outputs come back under $OUT; the model also stays in .devout/ for call 2.
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 CDS_CACHE_DIR=/tmp/cdscache
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, diffusers, transformers, sys; print(sys.version.split()[0], torch.__version__, diffusers.__version__, transformers.__version__)" | tee -a "$OUT/gpu.txt"
mkdir -p .devout
timeout 330 python3 tools/train_demo_model.py --profile gpu --device cuda --out .devout/shapes-demo > "$OUT/train.log" 2>&1
echo "train rc=$?" | tee -a "$OUT/train.log"
tail -5 "$OUT/train.log"
if [ -f .devout/shapes-demo/model_index.json ]; then
  tar -C .devout -czf /tmp/shapes-demo.tgz shapes-demo && split -b 15M /tmp/shapes-demo.tgz "$OUT/shapes-demo.tgz.part-"
  timeout 200 python3 benchmarks/quality_demo.py --model .devout/shapes-demo --device cuda --scenes 64 \
     --w-cuts 0,1,3,10,30,100,300,1000,3000 --out .devout/quality > "$OUT/quality.md" 2> "$OUT/quality.log"
  echo "quality rc=$?" >> "$OUT/quality.log"
  cat "$OUT/quality.md"
  (cd .devout/quality && tar -czf "$OUT/quality.tgz" .)
fi
ls -la "$OUT"
