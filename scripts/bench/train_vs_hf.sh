#!/usr/bin/env bash
# The training-speed comparison of record, in one call on the GPU machine: `t2m train` (the real command) on
# the published data against ../shared/bench/hf_real_train.py (HF transformers + PEFT bf16 LoRA) on the same
# examples and the same random checkpoint of the exact Qwen2.5-Coder-7B-Instruct layout. Prints one JSON line
# per system and the ratio of real-token throughputs, with each one's GPU memory (nvidia-smi, polled).
# Run from the repo root with bin/t2m-cuda and .bench/ (../shared/bench/*.py, data/, tokenizer.json) carried:
#   scripts/bench/train_vs_hf.sh [--limit 256] [--epochs 2] [--rounds N]
# With --rounds N (default 1) the pair runs N times, alternating t2m and HF, and a last line gives each side's
# mean and the ratio of the means: HF's own rate moved 5% between calls of one day (7,501-7,877 tok/s).
# T2M_TRAIN_ARGS adds flags to t2m's command (an A/B of one option, e.g. T2M_TRAIN_ARGS="--weight-cache-gib 0").
set -uo pipefail
limit=256; epochs=2; rounds=1
while [ $# -gt 0 ]; do case $1 in --limit) limit=$2; shift 2;; --epochs) epochs=$2; shift 2;; --rounds) rounds=$2; shift 2;;
  *) echo "unknown $1"; exit 2;; esac; done
ckpt=${CKPT:-/tmp/q7b}
[ -d "$ckpt" ] || python3 .bench/make_random_checkpoint.py "$ckpt" --tokenizer .bench/tokenizer.json | tail -1
poll() { while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; sleep 0.5; done; }
all_t2m=""; all_hf=""
for round in $(seq "$rounds"); do
[ "$rounds" -gt 1 ] && echo "round $round of $rounds"
poll >/tmp/t2m-mem.txt & p=$!
runs=$(mktemp -d)
/usr/bin/time -f "%M" -o /tmp/t2m-rss.txt ./bin/t2m-cuda train --model "$ckpt" --data-dir .bench/data --limit "$limit" \
  --epochs "$epochs" --device cuda --output-dir "$runs" --save-every 0 ${T2M_TRAIN_ARGS:-} >/tmp/t2m-train.log 2>&1
rc=$?; kill $p; wait $p 2>/dev/null
grep -E "device memory|packing|eval_loss|tuned" /tmp/t2m-train.log
# t2m's throughput: real tokens per second over the updates after the first (warm-up) one.
t2m=$(awk '/^step/ && $2 !~ /^1\// {gsub("ms/step","",$13); tps+=$11; n++} END {if (n) printf "%.0f", tps/n}' /tmp/t2m-train.log)
# t2m's micro-batches by padded rows (from metrics.jsonl, updates after the first): count × mean ms.
python3 - "$runs" <<'PY'
import glob, json, sys
by = {}
for path in glob.glob(sys.argv[1] + "/*/metrics.jsonl"):
    for line in open(path):
        m = json.loads(line)
        if m.get("step", 0) > 1 and "tokens_per_second" in m:
            for mb in m.get("micro_batches", []):
                by.setdefault(mb["rows"] * mb["seq"], []).append(mb["ms"])
print("t2m micro-batches (rows: count x mean ms):", ", ".join(
    "%d: %d x %.1f" % (r, len(v), sum(v) / len(v)) for r, v in sorted(by.items())))
PY
echo "{\"system\":\"t2m-train-cuda\",\"exit\":$rc,\"examples\":$limit,\"epochs\":$epochs,\"tok_per_s\":${t2m:-0},\"gpu_mem_peak_mib\":$(sort -n /tmp/t2m-mem.txt | tail -1),\"host_peak_rss_mib\":$(( $(cat /tmp/t2m-rss.txt) / 1024 ))}"
poll >/tmp/hf-mem.txt & p=$!
hf=$(PYTHONUNBUFFERED=1 python3 .bench/hf_real_train.py --model "$ckpt" --data .bench/data --limit "$limit" 2>/dev/null | grep '^{')
kill $p; wait $p 2>/dev/null
echo "$hf" | sed "s/}\$/, \"gpu_mem_peak_mib\": $(sort -n /tmp/hf-mem.txt | tail -1)}/"
hft=$(echo "$hf" | sed -n 's/.*"tok_per_s": \([0-9.]*\).*/\1/p')
[ -n "$hft" ] && [ -n "$t2m" ] && awk -v a="$t2m" -v b="$hft" 'BEGIN {printf "ratio t2m / HF: %.2fx\n", a/b}'
all_t2m="$all_t2m ${t2m:-}"; all_hf="$all_hf ${hft:-}"
done
if [ "$rounds" -gt 1 ]; then
  echo "$all_t2m|$all_hf" | awk -F'|' '{n = split($1, a, " "); m = split($2, b, " "); for (i = 1; i <= n; i++) sa += a[i]; for (i = 1; i <= m; i++) sb += b[i];
    if (n && m) printf "over %d rounds: t2m %.0f tok/s, HF %.0f tok/s, ratio of the means %.2fx\n", n, sa/n, sb/m, (sa/n)/(sb/m)}'
fi
