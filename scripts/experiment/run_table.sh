#!/usr/bin/env bash
# Issue 12's experiment, small, on the GPU machine: the base model made from scratch, then the three rows of
# the original's table on the published data set (.bench/data):
#   1. t2m baseline on the base (zero-shot)
#   2. t2m train (defaults: QLoRA NF4, r=8, 3 epochs) then t2m eval
#   3. the same LoRA fine-tune in HF PEFT (bf16), its outputs scored with t2m score
# then t2m compare, the table (table.py) and the time each step took.
#
# Run from the repo root, with bin/t2m-cuda and .bench/ carried (make build-cuda; make bench):
#   scripts/experiment/run_table.sh all   # everything in one call (expected ~6-8 min on an H200)
#   scripts/experiment/run_table.sh 1     # base + baseline + t2m train + t2m eval  -> $OUT/runs_part1.tar.gz
#   scripts/experiment/run_table.sh 2     # base (remade, same seed) + HF PEFT + score + compare; reads part 1's
#                                         # runs from .exp/runs_part1.tar.gz (carried) when they are not on disk
#   scripts/experiment/run_table.sh spread  # base + the spread of the fine-tunes: t2m train + eval with each seed
#                                         # of T2M_SEEDS (default "42 7 1234"), t2m without quantization (what
#                                         # the HF side trains: --quantize none, seed 42), HF PEFT with each seed
#                                         # of HF_SEEDS (default "7"; seed 42 is part 2's row) -> runs_spread.tar.gz
#   scripts/experiment/run_table.sh lr    # base + baseline + the fine-tunes at other peak learning rates, with
#                                         # each seed of LR_SEEDS (default "42"): t2m train + eval at each of
#                                         # T2M_LRS (default "2e-4 2e-3 2e-3:bf16"; :bf16 is --quantize none), HF
#                                         # PEFT at each of HF_LRS (default "2e-4 2e-3"; :bf16ops is
#                                         # --lora-bf16-ops), in the background beside
#                                         # t2m) scored by t2m score, and t2m eval with each HF adapter; each step
#                                         # cut at STEP_TIMEOUT seconds (default 400); T2M_TRAIN_ARGS and HF_ARGS
#                                         # are added -> runs_lr.tar.gz
#   scripts/experiment/run_table.sh qbase # base + HF PEFT on the base's NF4 round trip (bin/nf4base: the seven
#                                         # projections through t2m's NF4 quantizer and back, as t2m's QLoRA
#                                         # training multiplies by them) at each of HF_LRS (default "2e-3") with
#                                         # each seed of LR_SEEDS: tells what NF4 costs apart from what t2m's
#                                         # training does -> runs_qbase.tar.gz
# Results under $OUT (at most 8 files): table.log (the summary: versions, checks, table, timings),
# timings.jsonl, base.log, t2m_train.log, t2m.log (baseline/eval/score/compare output), hf_peft.log,
# comparison.md, runs.tar.gz (or runs_part1.tar.gz: reports, predictions, training configs, metrics,
# adapters, base_info.json, hf_metrics.json; no checkpoints, no base weights).
# Environment: OUT (default /tmp/t2m-exp-out), EXP_DIR (work folder, default /tmp/t2m-exp), T2M (default
# ./bin/t2m-cuda), SEEDS (t2m data seeds of the base's training data), DATA_STYLE (their t2m data --style:
# t2m, the default, or published), BASE_ARGS (extra make_small_base.py
# flags), HF_ARGS (extra hf_peft_finetune.py flags), T2M_TRAIN_ARGS (extra t2m train flags).
set -uo pipefail
part=${1:-all}
case $part in all|1|2|spread|lr|qbase) ;; *) echo "usage: $0 [all|1|2|spread|lr|qbase]"; exit 2;; esac
OUT=${OUT:-/tmp/t2m-exp-out}; W=${EXP_DIR:-/tmp/t2m-exp}; T2M=${T2M:-./bin/t2m-cuda}
SEEDS=${SEEDS:-"101 102 103 104 105 106 107 108 109 110"}
DATA=.bench/data; TOK=.bench/tokenizer.json
BASE=$W/t2m-small-base; RUNS=$W/runs; HF=$W/hf; LOGS=$W/logs
mkdir -p "$OUT" "$W" "$RUNS" "$LOGS"
export PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/table.log") 2>&1
teepid=$!
# finish RC: lets tee write the last lines of table.log before the call returns, then exits with RC.
finish() { exec >&- 2>&-; wait "$teepid" 2>/dev/null; exit "$1"; }
t_all=$(date +%s)

# step NAME LOG CMD...: runs CMD with its output into LOG ("-": this script's output), prints and records
# (timings.jsonl) its exit status and seconds.
step() {
  local name=$1 log=$2; shift 2
  local t0 t1 rc s
  t0=$(date +%s.%N); echo "== $name: $*"
  if [ "$log" = - ]; then "$@"; else "$@" >"$log" 2>&1; fi; rc=$?
  t1=$(date +%s.%N); s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
  echo "== $name: exit $rc, $s s (elapsed $(( $(date +%s) - t_all )) s)"
  echo "{\"step\": \"$name\", \"exit\": $rc, \"seconds\": $s}" >>"$OUT/timings.jsonl"
  return $rc
}

for f in "$T2M" "$DATA/train.jsonl" "$DATA/eval.jsonl" "$DATA/held_out.jsonl" "$TOK"; do
  [ -e "$f" ] || { echo "missing $f: build bin/t2m-cuda (make build-cuda), make bench, and carry bin/t2m-cuda and .bench"; finish 2; }
done
echo "== part $part, $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$T2M" --version
python3 -c 'import sys, torch, transformers, peft, tokenizers; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__, "tokenizers", tokenizers.__version__)'

make_base() {
  for s in $SEEDS; do "$T2M" data --style "${DATA_STYLE:-t2m}" --seed "$s" --out "$W/synth/$s" >/dev/null || return 1; done
  local dirs=(); for s in $SEEDS; do dirs+=("$W/synth/$s"); done
  # shellcheck disable=SC2086
  python3 scripts/experiment/make_small_base.py --data "${dirs[@]}" --tokenizer "$TOK" --out "$BASE" \
    --check "$DATA/eval.jsonl" ${BASE_ARGS:-} >>"$OUT/base.log" 2>&1
}

base() {
  if [ -f "$BASE/model.safetensors" ] && [ -f "$BASE/base_info.json" ]; then
    echo "base: reusing $BASE"
  else
    step make_small_base - make_base || { tail -20 "$OUT/base.log"; return 1; }
  fi
  grep -E "^\[.*(data:|model:|trained|check|WARNING)" "$OUT/base.log"
  tail -1 "$OUT/base.log"
  sha256sum "$BASE/model.safetensors" "$BASE/config.json"
}

# score_hf DIR RUN TAG: t2m score of an HF PEFT generation (DIR/<split>_predictions.jsonl) on both splits, as
# run RUN in $RUNS; steps t2m_score_<split>TAG, logs $LOGS/score_<split>TAG.log.
score_hf() {
  local sp
  for sp in eval held_out; do
    step "t2m_score_$sp$3" "$LOGS/score_$sp$3.log" "$T2M" score --split "$DATA/$sp.jsonl" \
      --predictions "$1/${sp}_predictions.jsonl" --run-name "$2" --output-dir "$RUNS" --overwrite
  done
}

# report_lines LOG: the rates t2m printed (one block per split).
report_lines() { grep -E "^(small_|\| (syntax|operators|fields|overall|exact match) )|^examples:" "$1"; }

part1() {
  step t2m_baseline "$LOGS/baseline.log" "$T2M" baseline --model "$BASE" --data-dir "$DATA" --output-dir "$RUNS" \
    --run-name small_baseline --device cuda --overwrite
  cat "$LOGS/baseline.log" >>"$OUT/t2m.log"; report_lines "$LOGS/baseline.log"
  # shellcheck disable=SC2086
  step t2m_train "$OUT/t2m_train.log" "$T2M" train --model "$BASE" --data-dir "$DATA" --output-dir "$RUNS" \
    --run-name small_t2m_r8 --device cuda --save-every 0 ${T2M_TRAIN_ARGS:-} || { tail -20 "$OUT/t2m_train.log"; return 1; }
  grep -E "^(training on|epoch [0-9]+:|done:)|device memory|warning" "$OUT/t2m_train.log"
  step t2m_eval "$LOGS/eval.log" "$T2M" eval --model "$BASE" --adapter "$RUNS/small_t2m_r8/adapter" --data-dir "$DATA" \
    --output-dir "$RUNS" --run-name small_t2m_r8 --device cuda --overwrite
  cat "$LOGS/eval.log" >>"$OUT/t2m.log"; report_lines "$LOGS/eval.log"
}

part2() {
  # shellcheck disable=SC2086
  step hf_peft "$OUT/hf_peft.log" python3 scripts/experiment/hf_peft_finetune.py --base "$BASE" --data "$DATA" \
    --out "$HF" ${HF_ARGS:-} || { tail -30 "$OUT/hf_peft.log"; return 1; }
  grep -E "(data:|LoRA|training:|epoch [0-9]+:|trained|first token|generated|WARNING)" "$OUT/hf_peft.log"; tail -1 "$OUT/hf_peft.log"
  score_hf "$HF" small_hf_peft_r8 ""
  for s in eval held_out; do
    cat "$LOGS/score_$s.log" >>"$OUT/t2m.log"; report_lines "$LOGS/score_$s.log"
  done
  step t2m_compare "$LOGS/compare.log" "$T2M" compare --output-dir "$RUNS"
  cat "$LOGS/compare.log" >>"$OUT/t2m.log"
  cp "$RUNS/comparison.md" "$OUT/comparison.md"
}

# spread: the fine-tunes again with other seeds, and t2m without quantization, each scored on both splits.
spread() {
  local s runs="small_baseline"
  step t2m_baseline "$LOGS/baseline.log" "$T2M" baseline --model "$BASE" --data-dir "$DATA" --output-dir "$RUNS" \
    --run-name small_baseline --device cuda --overwrite
  # shellcheck disable=SC2086
  for s in ${T2M_SEEDS:-42 7 1234} bf16; do
    local name=small_t2m_r8_s$s q=() seed=$s
    if [ "$s" = bf16 ]; then name=small_t2m_r8_bf16; q=(--quantize none); seed=42; fi
    step "t2m_train_$s" "$LOGS/train_$s.log" "$T2M" train --model "$BASE" --data-dir "$DATA" --output-dir "$RUNS" \
      --run-name "$name" --device cuda --save-every 0 --seed "$seed" "${q[@]}" || { tail -5 "$LOGS/train_$s.log"; continue; }
    grep -E "^epoch [0-9]+:" "$LOGS/train_$s.log"
    step "t2m_eval_$s" "$LOGS/eval_$s.log" "$T2M" eval --model "$BASE" --adapter "$RUNS/$name/adapter" "${q[@]}" \
      --data-dir "$DATA" --output-dir "$RUNS" --run-name "$name" --device cuda --overwrite
    runs="$runs,$name"
  done
  for s in ${HF_SEEDS:-7}; do
    step "hf_peft_$s" "$LOGS/hf_$s.log" python3 scripts/experiment/hf_peft_finetune.py --base "$BASE" --data "$DATA" \
      --out "$W/hf_s$s" --seed "$s" || { tail -5 "$LOGS/hf_$s.log"; continue; }
    grep -E "epoch [0-9]+:" "$LOGS/hf_$s.log"
    score_hf "$W/hf_s$s" "small_hf_peft_r8_s$s" "_$s"
    runs="$runs,small_hf_peft_r8_s$s"
  done
  echo; python3 scripts/experiment/table.py "$RUNS" --runs "$runs" --by-kind --base-info "$BASE/base_info.json"
}

# lr: the same fine-tunes at other peak learning rates (everything else the seed's defaults), with each seed of
# LR_SEEDS (default "42"), each scored on both splits: is the recipe's 2e-4, tuned for a 7B, what keeps a small
# base from learning the task, and how far apart do t2m and HF PEFT land over seeds? t2m eval also generates
# with each HF PEFT adapter (bf16, as HF does), which tells t2m's generation and scoring apart from its
# training. The HF PEFT fine-tunes run in the background beside the t2m ones (the small base leaves most of the
# GPU idle), so the steps' seconds overlap.
lr_sweep() {
  local lr s name q runs="small_baseline" to=${STEP_TIMEOUT:-400} pids=() seeds=${LR_SEEDS:-42}
  step t2m_baseline "$LOGS/baseline.log" "$T2M" baseline --model "$BASE" --data-dir "$DATA" --output-dir "$RUNS" \
    --run-name small_baseline --device cuda --overwrite
  report_lines "$LOGS/baseline.log"
  # HF_LRS entries are LR or LR:bf16ops (hf_peft_finetune.py --lora-bf16-ops: the adapter's products from bf16
  # operands, as t2m's GPU training).
  for s in $seeds; do
    for lr in ${HF_LRS:-2e-4 2e-3}; do
      local tag=${lr/:/_} x=()
      [ "${lr#*:}" = bf16ops ] && x=(--lora-bf16-ops)
      step "hf_peft_lr${tag}_s$s" "$LOGS/hf_lr${tag}_s$s.log" timeout "$to" python3 scripts/experiment/hf_peft_finetune.py \
        --base "$BASE" --data "$DATA" --out "$W/hf_lr${tag}_s$s" --lr "${lr%:bf16ops}" --seed "$s" "${x[@]}" ${HF_ARGS:-} \
        >"$LOGS/hf_lr${tag}_s$s.step" 2>&1 &
      pids+=($!)
    done
  done
  # T2M_LRS entries are LR or LR:bf16 (the same without quantization, what the HF side trains).
  for s in $seeds; do
    for lr in ${T2M_LRS:-2e-4 2e-3 2e-3:bf16}; do
      name=small_t2m_r8_lr${lr%:bf16}; q=()
      if [ "${lr#*:}" = bf16 ]; then name=${name}_bf16; q=(--quantize none); fi
      name=${name}_s$s
      step "t2m_train_${name#small_t2m_r8_}" "$LOGS/train_$name.log" timeout "$to" "$T2M" train --model "$BASE" \
        --data-dir "$DATA" --output-dir "$RUNS" --run-name "$name" --device cuda --save-every 0 --lr "${lr%:bf16}" \
        --seed "$s" "${q[@]}" ${T2M_TRAIN_ARGS:-} || { tail -5 "$LOGS/train_$name.log"; continue; }
      grep -E "^epoch [0-9]+:" "$LOGS/train_$name.log"
      step "t2m_eval_${name#small_t2m_r8_}" "$LOGS/eval_$name.log" timeout "$to" "$T2M" eval --model "$BASE" \
        --adapter "$RUNS/$name/adapter" "${q[@]}" --data-dir "$DATA" --output-dir "$RUNS" --run-name "$name" \
        --device cuda --overwrite || continue
      report_lines "$LOGS/eval_$name.log"
      runs="$runs,$name"
    done
  done
  [ ${#pids[@]} -eq 0 ] || wait "${pids[@]}"
  for s in $seeds; do
    for lr in ${HF_LRS:-2e-4 2e-3}; do
      lr=${lr/:/_}
      local hf=$W/hf_lr${lr}_s$s
      cat "$LOGS/hf_lr${lr}_s$s.step"
      grep -E "epoch [0-9]+:|first token" "$LOGS/hf_lr${lr}_s$s.log"
      [ -f "$hf/held_out_predictions.jsonl" ] || { tail -5 "$LOGS/hf_lr${lr}_s$s.log"; continue; }
      score_hf "$hf" "small_hf_peft_r8_lr${lr}_s$s" "_lr${lr}_s$s"
      runs="$runs,small_hf_peft_r8_lr${lr}_s$s"
      name=small_t2m_eval_of_hf_lr${lr}_s$s
      step "t2m_eval_of_hf_lr${lr}_s$s" "$LOGS/eval_$name.log" "$T2M" eval --model "$BASE" --adapter "$hf/adapter" \
        --quantize none --data-dir "$DATA" --output-dir "$RUNS" --run-name "$name" --device cuda --overwrite || continue
      python3 scripts/experiment/same_outputs.py "$RUNS/$name" "$hf"
      runs="$runs,$name"
    done
  done
  echo; python3 scripts/experiment/table.py "$RUNS" --runs "$runs" --by-kind --seed-means --base-info "$BASE/base_info.json"
}

# qbase: HF PEFT over the NF4 round trip of the base (bin/nf4base), each run scored on both splits. With the
# lr mode's rows on the same base (same seeds), it splits t2m QLoRA's distance to HF PEFT on the bf16 base into
# what the NF4 weights cost (HF on the round trip vs HF on the base) and what is left to t2m's training.
qbase() {
  local lr s runs="" to=${STEP_TIMEOUT:-400} pids=() seeds=${LR_SEEDS:-42} nb=$W/t2m-small-base-nf4
  step nf4base - "${NF4BASE:-./bin/nf4base}" --in "$BASE" --out "$nb" || return 1
  sha256sum "$nb/model.safetensors"
  for s in $seeds; do
    for lr in ${HF_LRS:-2e-3}; do
      step "hf_peft_nf4base_lr${lr}_s$s" "$LOGS/hf_nf4base_lr${lr}_s$s.log" timeout "$to" python3 \
        scripts/experiment/hf_peft_finetune.py --base "$nb" --data "$DATA" --out "$W/hf_nf4base_lr${lr}_s$s" \
        --lr "$lr" --seed "$s" ${HF_ARGS:-} >"$LOGS/hf_nf4base_lr${lr}_s$s.step" 2>&1 &
      pids+=($!)
    done
  done
  [ ${#pids[@]} -eq 0 ] || wait "${pids[@]}"
  for s in $seeds; do
    for lr in ${HF_LRS:-2e-3}; do
      local hf=$W/hf_nf4base_lr${lr}_s$s name=small_hf_peft_r8_nf4base_lr${lr}_s$s
      cat "$LOGS/hf_nf4base_lr${lr}_s$s.step"
      grep -E "epoch [0-9]+:" "$LOGS/hf_nf4base_lr${lr}_s$s.log"
      [ -f "$hf/held_out_predictions.jsonl" ] || { tail -5 "$LOGS/hf_nf4base_lr${lr}_s$s.log"; continue; }
      score_hf "$hf" "$name" "_nf4base_lr${lr}_s$s"
      runs="${runs:+$runs,}$name"
    done
  done
  [ -n "$runs" ] || return 1
  echo; python3 scripts/experiment/table.py "$RUNS" --runs "$runs" --seed-means
}

# pack NAME: the run folders (no checkpoints), base_info.json, config.json and HF's metrics and adapter.
pack() {
  mkdir -p "$W/meta"; cp "$BASE/base_info.json" "$BASE/config.json" "$W/meta/" 2>/dev/null
  [ -f "$HF/hf_metrics.json" ] && cp "$HF/hf_metrics.json" "$W/meta/"
  local extra=(); [ -d "$HF/adapter" ] && extra+=(hf/adapter)
  tar -C "$W" --exclude='*/checkpoint' --exclude='*.lock' -czf "$OUT/$1" runs meta "${extra[@]}" && ls -la "$OUT/$1"
}

rc=0
if [ "$part" = 2 ] && [ ! -f "$RUNS/small_baseline/held_out_report.json" ]; then
  if [ -f .exp/runs_part1.tar.gz ]; then
    mkdir -p "$W/part1" && tar -C "$W/part1" -xzf .exp/runs_part1.tar.gz && cp -r "$W/part1/runs/." "$RUNS/" &&
      echo "part 1's runs restored from .exp/runs_part1.tar.gz: $(ls "$RUNS" | tr '\n' ' ')"
  else
    echo "warning: no part 1 runs here and no .exp/runs_part1.tar.gz: the table will have the HF PEFT row only"
  fi
fi
base || finish 1
if [ -f "$W/part1/meta/base_info.json" ]; then
  python3 - "$W/part1/meta/base_info.json" "$BASE/base_info.json" <<'EOF'
import json, sys
a, b = (json.load(open(p))["model_safetensors_sha256"] for p in sys.argv[1:])
print("base weights %s part 1's (sha256 %s vs %s)" % ("identical to" if a == b else "DIFFER from", a[:16], b[:16]))
EOF
fi
case $part in
  all) part1 || rc=1; part2 || rc=1; pack runs.tar.gz ;;
  1) part1 || rc=1; pack runs_part1.tar.gz ;;
  2) part2 || rc=1; pack runs.tar.gz ;;
  spread) spread || rc=1; pack runs_spread.tar.gz ;;
  lr) lr_sweep || rc=1; pack runs_lr.tar.gz ;;
  qbase) qbase || rc=1; pack runs_qbase.tar.gz ;;
esac
echo
if [ "$part" = spread ] || [ "$part" = lr ] || [ "$part" = qbase ]; then
  python3 scripts/experiment/table.py "$RUNS" --runs small_baseline --timings "$OUT/timings.jsonl"
else
  python3 scripts/experiment/table.py "$RUNS" --timings "$OUT/timings.jsonl" --by-kind --base-info "$BASE/base_info.json"
fi
echo "== part $part done in $(( $(date +%s) - t_all )) s, exit $rc"
finish $rc
