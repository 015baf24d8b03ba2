#!/usr/bin/env bash
# Faults on the GPU path that unit tests cannot reach, in one short call on a machine with one GPU (repo root,
# bin/t2m-cuda carried):
#  1. a real SIGINT during `t2m baseline --device cuda`: exit status 130, the message, no report or
#     predictions of the unfinished split;
#  2. `t2m train --gpus 2` on a machine with fewer GPUs: refused before any rank starts, naming the GPU count.
set -uo pipefail
T=./bin/t2m-cuda
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
w=$(mktemp -d); $T data --out "$w/data" >/dev/null
echo "== 1. SIGINT during baseline on the GPU"
$T baseline --model tiny --data-dir "$w/data" --device cuda --generation-batch 1 --max-new-tokens 64 \
  --output-dir "$w/runs" --run-name s >"$w/base.log" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q "generating eval: 3/" "$w/base.log" && break; sleep 0.05; done
kill -INT "$pid"; wait "$pid"; echo "baseline exit $? (want 130)"
grep -E "interrupted|generating on" "$w/base.log" | head -3
echo "files in the run folder: $(ls -A "$w/runs/s" 2>/dev/null | tr '\n' ' ')(want none but .lock)"
echo "== 2. --gpus 2 with $(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l) GPU(s)"
$T train --model tiny --data-dir "$w/data" --limit 8 --epochs 1 --device cuda --gpus 2 --output-dir "$w/runs" --run-name g 2>&1 | tail -4
echo "train --gpus 2 exit ${PIPESTATUS[0]}"
echo "run folder: $(ls -A "$w/runs/g" 2>/dev/null | tr '\n' ' ')"
