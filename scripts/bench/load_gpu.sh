#!/usr/bin/env bash
# Start-up of `t2m train` on the GPU (the training-speed issue's load time and host memory), in one short call:
# the GPU tests of the load-time quantizer, the tiny pipeline with --quantize nf4 quantized on the GPU and on
# the host (the losses must be identical), then the 7B layout (../shared/bench/make_random_checkpoint.py) from
# process start to the first update's line, with the peak host RSS (VmHWM) at that moment, for the GPU and
# the host quantizer. Run from the repo root with bin/t2m-cuda, bin/gpu.test and .bench/ carried.
#   scripts/bench/load_gpu.sh [--7b-only]   (QUANTIZERS="1" measures the GPU quantizer alone; default "1 0")
# WORKLOAD replaces the 7B run's data flags (default a short run: "--limit 16 --epochs 1 --grad-accum 1"; the
# training-speed workload is WORKLOAD="--limit 256 --epochs 2 --grad-accum 4").
set -uo pipefail
T=./bin/t2m-cuda
R=$(pwd)
small=1
[ "${1:-}" = --7b-only ] && small=0
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
if [ "$small" = 1 ]; then
(cd gpu && "$R/bin/gpu.test" -test.run 'QuantizerMatchesHost|TrajectoryParity' -test.v 2>&1 | grep -E "^(--- |ok|FAIL|PASS)")
w=$(mktemp -d); $T data --out "$w/data" >/dev/null
for q in 1 0; do
  T2M_GPU_QUANTIZE=$q $T train --model tiny --quantize nf4 --data-dir "$w/data" --limit 16 --epochs 1 --batch-size 2 \
    --grad-accum 2 --max-len 2048 --seed 7 --device cuda --output-dir "$w/q$q" --run-name r >/dev/null 2>&1
  echo "tiny nf4, T2M_GPU_QUANTIZE=$q: exit $? losses $(grep -oE '"loss":[0-9.]+' "$w/q$q/r/metrics.jsonl" | tr '\n' ' ')"
done
fi
ckpt=/tmp/q7b
[ -d "$ckpt" ] || python3 .bench/make_random_checkpoint.py "$ckpt" --tokenizer .bench/tokenizer.json | tail -1
for q in ${QUANTIZERS:-1 0}; do
  log=$(mktemp); start=$(date +%s.%N)
  T2M_GPU_QUANTIZE=$q $T train --model "$ckpt" --data-dir .bench/data ${WORKLOAD:---limit 16 --epochs 1 --grad-accum 1} --batch-size 4 \
    --max-len 512 --device cuda --output-dir "$(mktemp -d)" --save-every 0 >"$log" 2>&1 &
  pid=$!; hwm=0
  for _ in $(seq 1200); do
    h=$(awk '/VmHWM/ {print $2}' /proc/$pid/status 2>/dev/null); [ -n "$h" ] && hwm=$h
    grep -q "^step 1/" "$log" && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
  done
  t=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e-s}')
  kill $pid 2>/dev/null; wait $pid 2>/dev/null
  echo "7B T2M_GPU_QUANTIZE=$q: start to first update ${t} s, peak host RSS $((hwm / 1024)) MiB; $(grep -m1 -E '^step 1/|rror' "$log")"
  grep -E "^(loading|model|training backend|train:|eval:)" "$log" | sed 's/^/  /'
done
