#!/usr/bin/env bash
# Whole-evaluation time of the evaluation-speed issue, on the GPU machine: `t2m baseline` (the generation path
# of `t2m eval`) over all 594 examples of the published data (eval + held_out) on a random checkpoint of the
# exact 7B layout (../shared/bench/make_random_checkpoint.py; random weights never emit a stop token, so
# every prompt decodes all --max-new-tokens), wall time from the command's start (load included), peak GPU
# memory (nvidia-smi, polled) and peak host RSS. Run from the repo root with bin/t2m-cuda and .bench/ carried:
#   scripts/bench/eval_gpu.sh [MAX_NEW_TOKENS...]     (default: 64; WEIGHTS="nf4 bf16" runs each T2M_GPU_WEIGHTS,
#                                                      default nf4, the command's; GEN_BATCH="32 64" runs each
#                                                      --generation-batch, default the command's; ADAPTER=dir
#                                                      runs t2m eval with that adapter instead of t2m baseline)
set -uo pipefail
ckpt=${CKPT:-/tmp/q7b}
[ -d "$ckpt" ] || python3 .bench/make_random_checkpoint.py "$ckpt" --tokenizer .bench/tokenizer.json | tail -1
cmd=(baseline)
[ -n "${ADAPTER:-}" ] && cmd=(eval --adapter "$ADAPTER")
for w in ${WEIGHTS:-nf4}; do
for gb in ${GEN_BATCH:-0}; do
for n in "${@:-64}"; do
  (while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0; sleep 0.5; done) >/tmp/eval-mem.txt </dev/null 2>&1 &
  p=$!
  out=$(mktemp -d)
  start=$(date +%s.%N)
  T2M_GPU_WEIGHTS=$w /usr/bin/time -f "%M" -o /tmp/eval-rss.txt ./bin/t2m-cuda "${cmd[@]}" --model "$ckpt" --data-dir .bench/data --max-new-tokens "$n" \
    --generation-batch "$gb" --device cuda --output-dir "$out" --run-name b >/tmp/eval.log 2>&1
  rc=$?
  wall=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e-s}')
  kill $p; wait $p 2>/dev/null
  echo "{\"command\":\"${cmd[0]}\",\"weights\":\"$w\",\"generation_batch\":$gb,\"max_new_tokens\":$n,\"exit\":$rc,\"wall_s\":$wall,\"gpu_mem_peak_mib\":$(sort -n /tmp/eval-mem.txt | tail -1),\"host_peak_rss_mib\":$(( $(cat /tmp/eval-rss.txt) / 1024 ))}"
  grep -E "^(loading: [0-9]+ layers|loading: lm_head|model |generating on|generating (eval|held_out): [0-9]+/[0-9]+ prompts  [0-9.]+ new)|rror" /tmp/eval.log | tail -8
done
done
done
