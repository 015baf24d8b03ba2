#!/usr/bin/env bash
# Data-parallel training and evaluation (t2m train/eval --gpus N) on a machine of ≥ 2 GPUs, in one call:
#  1. the NCCL tests of gpu/ (2 GPUs: sums exact and identical on both ranks, the 7B LoRA size timed, a rank
#     that never comes times out instead of hanging);
#  2. the tiny model: per-update losses and grad norms of --gpus 2 against one GPU, and eval outputs of
#     --gpus 2 against one GPU (must be identical);
#  3. the real-data workload of the training-speed issue (a random checkpoint of the exact 7B layout, the
#     published data, --limit 256, B=4, grad-accum 4, max-len 512): tok/s for N = 1, 2 (and 4, 8 when the
#     machine has them), the scaling, the all-reduce time per update, GPU memory per GPU.
# Run from the repo root with bin/t2m-cuda, bin/gpu.test and .bench/ (make bench) carried:
#   scripts/bench/multi_gpu.sh [--limit 256] [--epochs 1] [--skip-7b] [--skip-tiny]
set -uo pipefail
limit=256; epochs=1; big=1; tiny=1
while [ $# -gt 0 ]; do case $1 in --limit) limit=$2; shift 2;; --epochs) epochs=$2; shift 2;; --skip-7b) big=0; shift;;
  --skip-tiny) tiny=0; shift;; *) echo "unknown $1"; exit 2;; esac; done
OUT=${OUT:-/tmp/t2m-multi}; mkdir -p "$OUT"
T=./bin/t2m-cuda
ngpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
nvidia-smi topo -m 2>/dev/null | head -4

echo "== 1. NCCL tests"
R=$(pwd)
(cd gpu && "$R/bin/gpu.test" -test.run 'NCCL|Collective' -test.v) >"$OUT/nccl-test.log" 2>&1; echo "gpu.test exit $?"
grep -E "^(--- |ok|FAIL|PASS)|NCCL [0-9]|floats|took|all-reduce" "$OUT/nccl-test.log" | head -20

if [ "$tiny" = 1 ]; then
echo "== 2. tiny model: 1 GPU vs --gpus 2"
w=$(mktemp -d); $T data --out "$w/data" >/dev/null
common=(--model tiny --data-dir "$w/data" --limit 32 --epochs 2 --batch-size 2 --grad-accum 4 --max-len 2048 --seed 7 --device cuda --run-name r)
$T train "${common[@]}" --output-dir "$w/g1" >"$OUT/tiny-g1.log" 2>&1; echo "train 1 GPU exit $?"
$T train "${common[@]}" --output-dir "$w/g2" --gpus 2 >"$OUT/tiny-g2.log" 2>&1; echo "train --gpus 2 exit $?"
tail -3 "$OUT/tiny-g2.log"
python3 - "$w/g1/r/metrics.jsonl" "$w/g2/r/metrics.jsonl" <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b), (len(a), len(b))
worst = {}
for x, y in zip(a, b):
    for k in ("loss", "grad_norm", "eval_loss"):
        if k in x:
            d = abs(x[k] - y[k]) / max(abs(x[k]), 1e-12)
            worst[k] = max(worst.get(k, 0), d)
print("per-update agreement, --gpus 2 vs 1 GPU (max relative difference over %d lines):" % len(a), json.dumps(worst))
print("first update: loss %.9f vs %.9f" % (a[0]["loss"], b[0]["loss"]))
ar = [y["allreduce_s"] for y in b if "allreduce_s" in y]
print("all-reduce per update (tiny): median %.2f ms" % (1000 * sorted(ar)[len(ar) // 2]))
EOF
ev=(--model tiny --data-dir "$w/data" --limit 40 --max-new-tokens 32 --generation-batch 4 --device cuda --adapter "$w/g1/r/adapter" --run-name e)
$T eval "${ev[@]}" --output-dir "$w/e1" >"$OUT/tiny-e1.log" 2>&1; echo "eval 1 GPU exit $?"
$T eval "${ev[@]}" --output-dir "$w/e2" --gpus 2 >"$OUT/tiny-e2.log" 2>&1; echo "eval --gpus 2 exit $?"
for s in eval held_out; do
  if cmp -s <(grep -o '"raw_output":"[^"]*"' "$w/e1/e/${s}_predictions.jsonl") <(grep -o '"raw_output":"[^"]*"' "$w/e2/e/${s}_predictions.jsonl"); then
    echo "eval $s: --gpus 2 raw outputs identical to 1 GPU ($(wc -l <"$w/e1/e/${s}_predictions.jsonl") examples)"
  else echo "eval $s: OUTPUTS DIFFER"; fi
done
grep -E "generating .*rank" "$OUT/tiny-e2.log" | tail -2
fi

[ "$big" = 1 ] || exit 0
echo "== 3. 7B layout, published data, --limit $limit, --epochs $epochs, B=4, grad-accum 4, max-len 512"
ckpt=${CKPT:-/tmp/q7b}
[ -d "$ckpt" ] || python3 .bench/make_random_checkpoint.py "$ckpt" --tokenizer .bench/tokenizer.json | tail -1
base=""
for n in 1 2 4 8; do
  [ "$n" -le "$ngpu" ] || break
  runs=$(mktemp -d)
  (while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | tr '\n' ' '; echo; sleep 0.5; done) >"$OUT/mem-$n.txt" & p=$!
  start=$SECONDS
  $T train --model "$ckpt" --data-dir .bench/data --limit "$limit" --epochs "$epochs" --batch-size 4 --grad-accum 4 \
    --max-len 512 --device cuda --gpus "$n" --output-dir "$runs" --run-name r --save-every 0 >"$OUT/train-7b-$n.log" 2>&1
  rc=$?; kill $p; wait $p 2>/dev/null
  wall=$((SECONDS - start))
  tps=$(awk '/^step/ && $2 !~ /^1\// {tps+=$11; n++} END {if (n) printf "%.0f", tps/n}' "$OUT/train-7b-$n.log")
  ar=$(python3 -c "import json,sys; v=sorted(json.loads(l).get('allreduce_s',0) for l in open(sys.argv[1]) if 'loss' in json.loads(l)); print('%.1f' % (1000*v[len(v)//2]))" "$runs/r/metrics.jsonl" 2>/dev/null)
  mem=$(awk '{for (i=1;i<=NF;i++) if ($i>m[i]) m[i]=$i} END {for (i=1;i<=NF;i++) printf "%s%d", (i>1?",":""), m[i]}' "$OUT/mem-$n.txt")
  [ -z "$base" ] && base=$tps
  eff=$(awk -v a="${tps:-0}" -v b="${base:-1}" -v n="$n" 'BEGIN {printf "%.2f", a/b}')
  echo "{\"gpus\":$n,\"exit\":$rc,\"tok_per_s\":${tps:-0},\"speedup\":$eff,\"allreduce_ms_median\":${ar:-0},\"gpu_mem_peak_mib_per_gpu\":[$mem],\"wall_s\":$wall}"
  grep -E "^step 2/|device memory planned|rank .* failed|rror" "$OUT/train-7b-$n.log" | head -3
done
