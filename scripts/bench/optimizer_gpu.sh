#!/usr/bin/env bash
# The optimizer on the device (train.Updater over the CUDA backend's DeviceOptimizer), on the GPU machine:
#  1. its GPU tests (device vs host optimizer, resume, the trajectory parity, the backend, the machine's step);
#  2. `t2m bench train` at the 7B shape, the optimizer on the device and on the host (--host-optimizer): the
#     per-update split (forward + backward per micro-batch, the optimizer part) and the GPU memory;
#  3. the longer-sequence table of the training-speed issue: B=4 at T = 512, 1024, 2048 and T=512 at B = 1,
#     2, 8 (tok/s and GPU memory; a shape that does not fit says so).
# Run from the repo root with bin/t2m-cuda, bin/gpu.test and bin/gpu-machine.test carried:
#   scripts/bench/optimizer_gpu.sh [--skip-table]
set -uo pipefail
table=1
[ "${1:-}" = --skip-table ] && table=0
OUT=${OUT:-/tmp/t2m-opt}; mkdir -p "$OUT"
R=$(pwd)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1
echo "== 1. GPU tests"
(cd gpu && "$R/bin/gpu.test" -test.run 'DeviceOptimizer|ResumeOnGPU|Trajectory|TrainBackend' -test.v) >"$OUT/gpu-test.log" 2>&1
echo "gpu.test exit $?"
(cd gpu/machine && "$R/bin/gpu-machine.test" -test.run 'Step|LossGrads' -test.v) >>"$OUT/gpu-test.log" 2>&1
echo "gpu-machine.test exit $?"
grep -E "^(--- |FAIL|panic)|relative L2" "$OUT/gpu-test.log" | head -20
echo "== 2. bench train, 7B shape, B=4 T=512 grad-accum 4: optimizer on the device, then on the host"
./bin/t2m-cuda bench train --updates 3 2>"$OUT/bench-device.log" | grep '^{'
./bin/t2m-cuda bench train --updates 3 --host-optimizer 2>"$OUT/bench-host.log" | grep '^{'
[ "$table" = 1 ] || exit 0
echo "== 3. sequence length and batch size (7B shape, grad-accum 4, 2 timed updates)"
for bt in "4 512" "4 1024" "4 2048" "1 512" "2 512" "8 512"; do
  set -- $bt
  ./bin/t2m-cuda bench train --batch "$1" --seq "$2" --updates 2 2>"$OUT/bench-$1-$2.log" | grep '^{' ||
    { echo "{\"batch\":$1,\"seq\":$2,\"error\":\"$(grep -iE 'error|memory' "$OUT/bench-$1-$2.log" | tail -1 | tr '"' "'")\"}"; }
done
