#!/usr/bin/env bash
# Runs on the GPU machine from the repo root with bin/ carried (make build-cuda; one test binary per package
# of gpu/, as make bench builds them: for p in gpu gpu/cuda gpu/ops gpu/machine; do go test -tags t2mcuda -c
# -o bin/$(echo $p | tr / -).test ./$p/; done; go test -c -o bin/train.test ./train/): every GPU test, then
# the tiny pipeline on the GPU against the CPU (train, resume, baseline, eval), then the host optimizer's
# cost at the 7B LoRA size.
set -uo pipefail
OUT=${OUT:-/tmp/t2m-verify}; mkdir -p "$OUT"
T=./bin/t2m-cuda
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
: >"$OUT/gpu-test.log"
# Each test binary runs from its package's folder, as go test runs it (testdata paths are relative).
R=$(pwd)
for p in gpu gpu/cuda gpu/ops gpu/machine; do
  t=$R/bin/$(echo "$p" | tr / -).test
  (cd "$p" && "$t" -test.v >>"$OUT/gpu-test.log" 2>&1); echo "$(basename "$t") exit $?"
done
grep -E "^(--- FAIL|FAIL|panic)|GPU:" "$OUT/gpu-test.log"
echo "passed: $(grep -c '^--- PASS' "$OUT/gpu-test.log"), skipped: $(grep -c '^--- SKIP' "$OUT/gpu-test.log"), failed: $(grep -c '^--- FAIL' "$OUT/gpu-test.log")"
w=$(mktemp -d); $T data --out "$w/data" >/dev/null
common=(--model tiny --data-dir "$w/data" --limit 16 --epochs 1 --batch-size 2 --grad-accum 2 --max-len 2048 --seed 7)
for dev in cpu cuda; do
  $T train "${common[@]}" --device "$dev" --output-dir "$w/runs-$dev" >"$OUT/train-$dev.log" 2>&1; echo "train $dev exit $?"
  grep -oE '"loss":[0-9.]+' "$w/runs-$dev"/*/metrics.jsonl | tr '\n' ' '; echo
done
ev=(--model tiny --data-dir "$w/data" --limit 8 --max-new-tokens 32)
$T baseline "${ev[@]}" --device cuda --output-dir "$w/gen" --run-name base-cuda >"$OUT/base-cuda.log" 2>&1; echo "baseline cuda exit $?"
$T baseline "${ev[@]}" --device cpu --output-dir "$w/gen" --run-name base-cpu >"$OUT/base-cpu.log" 2>&1; echo "baseline cpu exit $?"
for s in eval held_out; do cmp <(grep -o '"raw_output":"[^"]*"' "$w/gen/base-cuda/${s}_predictions.jsonl") <(grep -o '"raw_output":"[^"]*"' "$w/gen/base-cpu/${s}_predictions.jsonl") && echo "baseline $s: cuda and cpu raw outputs identical"; done
$T eval "${ev[@]}" --device cuda --adapter "$w/runs-cuda/tiny_r8/adapter" --output-dir "$w/gen" --run-name eval-cuda >"$OUT/eval-cuda.log" 2>&1; echo "eval cuda exit $?"; grep -E "generating on|overall " "$OUT/eval-cuda.log" | head -4
./bin/train.test -test.run XXX -test.bench AdamW7B -test.benchtime 5x | grep Bench
# The benchmarks on the real paths, briefly (2 layers).
./bin/t2m-cuda bench train --layers 2 --updates 1 2>&1 | grep -E '^\{|rror'; echo "bench train exit $?"
./bin/t2m-cuda bench generate --layers 2 --batches 1,8 --repeats 1 2>&1 | grep -E '^\{|rror'; echo "bench generate exit $?"
