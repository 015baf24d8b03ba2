#!/usr/bin/env bash
# Runs on the GPU machine from the repo root, with bin/ (make bench) and .bench/ (the HF anchor) carried:
# GPU parity tests (TESTS selects them), `t2m bench train` (the hand-written full step at the 7B shape, the
# GEMM pieces alone, and the GPU machine against the hand-written step at 4 layers and a 32k vocabulary),
# then the HF PEFT anchor in the same call (compare ratios only within one call). Logs go to $OUT when set.
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
./bin/t2m-cuda bench train --scope full "$@" 2>&1 | tee "$OUT/t2m-bench-full.log" | tail -27
./bin/t2m-cuda bench train --scope gemm --warmup 1 --steps 3 "$@" 2>&1 | tee "$OUT/t2m-bench-gemm.log" | tail -3
./bin/t2m-cuda bench train --scope machine --layers 4 --vocab 32768 --warmup 1 --steps 3 2>&1 | tee "$OUT/t2m-bench-machine4.log" | tail -20
./bin/t2m-cuda bench train --scope full --layers 4 --vocab 32768 --warmup 1 --steps 3 2>&1 | tee "$OUT/t2m-bench-full4.log" | tail -27 | head -4
python3 .bench/hf_lora_anchor.py --gc off 2>&1 | grep -v Warning | tee "$OUT/hf-anchor.log"
