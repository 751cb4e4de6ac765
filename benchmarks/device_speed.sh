#!/usr/bin/env bash
# CUDA benchmarks on a machine with an NVIDIA GPU: the CDS step cost (optimised vs published
# loop structure, SD-1.5-shaped UNet at 512 px in fp16 and the tiny UNet) and the VAE backends.
#   bash benchmarks/device_speed.sh
# Options (OUT, PYTHON, WHEELS, SITE, CDS_CACHE_DIR): benchmarks/device_env.sh. Each script is
# stopped after a fixed time (200 s, 60 s, 120 s) so that one hang cannot take the whole run.
set -u
source "$(dirname "$0")/device_env.sh"
timeout 200 "$PYTHON" benchmarks/step_cost.py --device cuda --arch sd15 --size 512 --dtype fp16 --steps 10 --warmup 3 2>&1 | tee "$OUT/step_cost_sd15_fp16.md"
timeout 60 "$PYTHON" benchmarks/step_cost.py --device cuda --arch tiny --size 64 --steps 20 --warmup 5 2>&1 | tee "$OUT/step_cost_tiny.md"
timeout 120 "$PYTHON" benchmarks/vae.py --device cuda --sizes 512,1024 --repeats 5 2>&1 | tee "$OUT/vae_cuda.md"
# K = 4 target prompts: one shared run vs 4 separate runs (per-target step cost, peak memory)
timeout 180 "$PYTHON" benchmarks/multi_target.py --device cuda --arch sd15 --size 512 --dtype fp16 --ks 1,4 --steps 5 --warmup 2 2>&1 | tee "$OUT/multi_target_sd15_fp16.md"
