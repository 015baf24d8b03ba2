#!/usr/bin/env bash
# Runs on the GPU machine from the repo root, with bin/ (make bench) and .bench/ (the HF anchor) carried:
# GPU parity tests (TESTS selects them), then `t2m bench train` (full step, then the GEMM pieces alone) and
# the HF PEFT anchor in the same call (compare ratios only within one call). Logs go to $OUT when set.
set -uo pipefail
OUT=${OUT:-/tmp/t2m-bench}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
./bin/gpu.test -test.v -test.run "${TESTS:-.}" >"$OUT/gpu-test.log" 2>&1
echo "gpu.test exit $?"
grep -E "^(--- |PASS|FAIL|ok|panic)|GPU:|cuBLAS:" "$OUT/gpu-test.log"
./bin/t2m-cuda bench train --scope full "$@" 2>&1 | tee "$OUT/t2m-bench-full.log" | tail -34
./bin/t2m-cuda bench train --scope full --overlap=true "$@" 2>&1 | tee "$OUT/t2m-bench-full-overlap.log" | tail -32
./bin/t2m-cuda bench train --scope gemm --warmup 1 --steps 3 "$@" 2>&1 | tee "$OUT/t2m-bench-gemm.log" | tail -12
python3 .bench/hf_lora_anchor.py --gc off 2>&1 | grep -v Warning | tee "$OUT/hf-anchor.log"
