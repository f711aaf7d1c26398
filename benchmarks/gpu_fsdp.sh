#!/usr/bin/env bash
# FSDP2 LoRA throughput of Llama3-8B shapes on one GPU (prepared for an H200/H100), <= 8 min.
#
#   bash benchmarks/gpu_fsdp.sh           # from the repo root, on the GPU machine
#   SMOKE=1 bash benchmarks/gpu_fsdp.sh   # tiny shape on CPU (gloo): checks the script
#
# No Ray and no network: one process, a 1-rank process group (nccl), `fully_shard` on each
# layer and the root (the code `ray.strategy: fsdp` runs), bf16 params / fp32 reduce, per-layer
# activation checkpointing, the recipe's `train_step` with gradient clipping on, packed rows
# read from pre-tokenized Parquet by a background thread (benchmarks/gpu_fsdp.py). Prints
# tokens/s, peak memory and the share of step time spent waiting for data; compare with
# gpu_lora_8b.sh (the same shapes without FSDP) run on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
export WORK=${WORK:-/tmp/gpu_fsdp}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
timeout 470 "$PY" benchmarks/gpu_fsdp.py
