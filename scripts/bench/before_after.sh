#!/usr/bin/env bash
# Before/after speed of a change on the GPU machine, on the real command paths, in one call (so the numbers
# are comparable). Run from the repo root with carried: .before/t2m-cuda (the binary before the change),
# bin/t2m-cuda (after) and .bench/ (make bench: ../shared's bench scripts, data and tokenizer).
#   part 1 (default): generation (7B shape, random NF4 weights; before: the old generation benchmark test
#                     if .before/gpu.test exists, after: t2m bench generate) and t2m bench train
#   part 2:           a random checkpoint of the exact 7B layout, then t2m train on the published data and
#                     t2m baseline, before and after
#   part 3:           the same checkpoint, t2m train interleaved after/before/after/before (run-to-run noise)
set -uo pipefail
part=${1:-1}
OUT=${OUT:-/tmp/t2m-before-after}; mkdir -p "$OUT"
B=./.before/t2m-cuda; A=./bin/t2m-cuda
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
mem() { # peak GPU memory (MiB, nvidia-smi) while "$@" runs
  local f; f=$(mktemp); ( while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits >>"$f"; sleep 0.5; done ) &
  local p=$!; "$@"; local rc=$?; kill $p; wait $p 2>/dev/null; echo "peak GPU memory: $(sort -n "$f" | tail -1) MiB (exit $rc)"; }
if [ "$part" = 1 ]; then
  if [ -x .before/gpu.test ]; then
    echo "== before: generation (TestDecodeBench7B)"
    T2M_DECODE_BENCH=1 ./.before/gpu.test -test.run TestDecodeBench7B/bf16 -test.v 2>&1 | grep -E "batch|FAIL|ok" | grep -v "per-op" | head -8
  fi
  echo "== after: t2m bench generate"
  mem $A bench generate --repeats 2 2>&1
  echo "== after: t2m bench train (7B shape, B=4 T=512 accum 4)"
  mem $A bench train --updates 2 2>&1 | grep -v "bench train: update"
elif [ "$part" = 3 ]; then
  [ -d /tmp/q7b ] || python3 .bench/make_random_checkpoint.py /tmp/q7b --tokenizer .bench/tokenizer.json | tail -1
  for who in after before after before; do
    T=$B; [ $who = after ] && T=$A
    $T train --model /tmp/q7b --data-dir .bench/data --limit 256 --epochs 1 --device cuda --output-dir /tmp/runs3-$who-$RANDOM --save-every 0 2>&1 |
      awk -v who=$who '/^step/ && $2!="1/16" {gsub("ms/step","",$13); s+=$13; n++} END {printf "%s: mean %.1f ms/update over %d updates\n", who, s/n, n}'
  done
else
  python3 .bench/make_random_checkpoint.py /tmp/q7b --tokenizer .bench/tokenizer.json | tail -1
  for who in before after; do
    T=$B; [ $who = after ] && T=$A
    echo "== $who: t2m train --limit 256 --epochs 1 (published data, 7B random checkpoint)"
    mem $T train --model /tmp/q7b --data-dir .bench/data --limit 256 --epochs 1 --device cuda --output-dir /tmp/runs-$who --save-every 0 >"$OUT/train-$who.log" 2>&1
    grep -E "^step (4|8|12|16)/" "$OUT/train-$who.log"; tail -2 "$OUT/train-$who.log"
    echo "== $who: t2m baseline --limit 48 --max-new-tokens 64"
    /usr/bin/time -f "wall %e s, host peak RSS %M KiB" $T baseline --model /tmp/q7b --data-dir .bench/data --limit 48 --max-new-tokens 64 --device cuda --output-dir /tmp/gen-$who >"$OUT/base-$who.log" 2>&1
    grep -E "generating on|wall|overall" "$OUT/base-$who.log" | head -4
  done
  for s in eval held_out; do cmp -s <(grep -o '"raw_output":"[^"]*"' /tmp/gen-before/*/${s}_predictions.jsonl) <(grep -o '"raw_output":"[^"]*"' /tmp/gen-after/*/${s}_predictions.jsonl) && echo "baseline $s: before and after outputs identical" || echo "baseline $s: OUTPUTS DIFFER"; done
fi
