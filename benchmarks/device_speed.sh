#!/usr/bin/env bash
# Device call 2 (GPU box): step cost (optimised vs published structure), VAE backends and K shared targets.
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 CDS_CACHE_DIR=/tmp/cdscache
[ -d /tmp/site ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
timeout 200 python3 benchmarks/step_cost.py --device cuda --arch sd15 --size 512 --dtype fp16 --steps 10 --warmup 3 2>&1 | tee "$OUT/step_cost_sd15_fp16.md"
timeout 60 python3 benchmarks/step_cost.py --device cuda --arch tiny --size 64 --steps 20 --warmup 5 2>&1 | tee "$OUT/step_cost_tiny.md"
timeout 120 python3 benchmarks/vae.py --device cuda --sizes 512,1024 --repeats 5 2>&1 | tee "$OUT/vae_cuda.md"
# K = 4 target prompts: one shared run vs 4 separate runs (per-target step cost, peak memory)
timeout 180 python3 benchmarks/multi_target.py --device cuda --arch sd15 --size 512 --dtype fp16 --ks 1,4 --steps 5 --warmup 2 2>&1 | tee "$OUT/multi_target_sd15_fp16.md"
