#!/usr/bin/env bash
# The CUDA benchmark report on a machine with an NVIDIA GPU (benchmarks/cuda_bench.py): one CDS
# step vs the published structure (SD-1.5-shaped UNet, 512 px, fp16, time and peak memory), a
# whole 200-step edit with the VAE, K = 4 shared vs separate, torch vs ONNX VAE, a full-size
# SDXL-shaped step at 1024 px, fp16 vs fp32, the same seed on CPU and GPU, and the engine tests
# on the GPU. Random-weight fixtures only; nothing is trained; stops itself within 10 minutes.
#   bash benchmarks/device_speed.sh [more cuda_bench.py options, e.g. --device cuda:1]
# Options (OUT, PYTHON, WHEELS, SITE, CDS_CACHE_DIR): benchmarks/device_env.sh. Results in $OUT:
# results.md (the tables), results.json, logs/, gpu.txt.
set -u
source "$(dirname "$0")/device_env.sh"
"$PYTHON" benchmarks/cuda_bench.py --device cuda --out "$OUT" "$@"
