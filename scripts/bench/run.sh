#!/usr/bin/env bash
# Runs on the GPU machine from the repo root, with bin/ (make bench) and .bench/ (the HF anchor) carried:
# GPU parity tests (TESTS selects them), `t2m bench train` and `t2m bench generate` at the 7B shape (the real
# training backend and generator on random NF4 weights), then the HF PEFT anchor in the same call (compare ratios only within one call). Logs go to $OUT when set.
set -uo pipefail
OUT=${OUT:-/tmp/t2m-bench}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
: >"$OUT/gpu-test.log"
for t in ./bin/gpu.test ./bin/gpu-cuda.test ./bin/gpu-ops.test ./bin/gpu-machine.test; do
  "$t" -test.v -test.run "${TESTS:-.}" >>"$OUT/gpu-test.log" 2>&1
  echo "$(basename "$t") exit $?"
done
grep -E "^(--- |PASS|FAIL|ok|panic)|GPU:|cuBLAS:|loss: GPU|AdamW update" "$OUT/gpu-test.log" | grep -v "^    --- PASS"
./bin/t2m-cuda bench train "$@" 2>&1 | tee "$OUT/t2m-bench-train.log" | grep "^{"
./bin/t2m-cuda bench generate 2>&1 | tee "$OUT/t2m-bench-generate.log" | grep "^{"
python3 .bench/hf_lora_anchor.py --gc off 2>&1 | grep -v Warning | tee "$OUT/hf-anchor.log"
