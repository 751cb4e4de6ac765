#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: train the demo model with the gpu profile, then run the
# CDS-vs-DDS quality benchmark on it.
#   bash benchmarks/device_train_quality.sh
# Options (OUT, PYTHON, WHEELS, SITE, CDS_CACHE_DIR): benchmarks/device_env.sh; WORK is where the
# trained model and the quality images go (default: .devout). Results in $OUT: train.log,
# quality.md/.log, quality.tgz, and the model as shapes-demo.tgz split into 15 MB parts.
set -u
source "$(dirname "$0")/device_env.sh"
WORK=${WORK:-.devout}
mkdir -p "$WORK"
timeout 330 "$PYTHON" tools/train_demo_model.py --profile gpu --device cuda --out "$WORK/shapes-demo" > "$OUT/train.log" 2>&1
echo "train rc=$?" | tee -a "$OUT/train.log"
tail -5 "$OUT/train.log"
if [ -f "$WORK/shapes-demo/model_index.json" ]; then
  tar -C "$WORK" -czf "$TMPDIR/shapes-demo.tgz" shapes-demo && split -b 15M "$TMPDIR/shapes-demo.tgz" "$OUT/shapes-demo.tgz.part-"
  timeout 200 "$PYTHON" benchmarks/quality_demo.py --model "$WORK/shapes-demo" --device cuda --scenes 64 \
     --w-cuts 0,1,3,10,30,100,300,1000,3000 --out "$WORK/quality" > "$OUT/quality.md" 2> "$OUT/quality.log"
  echo "quality rc=$?" >> "$OUT/quality.log"
  cat "$OUT/quality.md"
  OUT_ABS=$(cd "$OUT" && pwd)
  (cd "$WORK/quality" && tar -czf "$OUT_ABS/quality.tgz" .)
fi
ls -la "$OUT"
