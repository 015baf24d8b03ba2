#!/usr/bin/env bash
# `make demo`: the t2m pipeline as far as it exists, on generated data and the built-in tiny model.
# Needs no GPU and no download. Everything goes under a temporary folder (kept, its path printed).
set -euo pipefail
cd "$(dirname "$0")/.."
T2M=./bin/t2m
work=$(mktemp -d "${TMPDIR:-/tmp}/t2m-demo.XXXXXX")
step() { printf '\n== %s\n' "$*"; }

step "t2m data: synthetic splits (seed 42) into $work/data"
$T2M data --seed 42 --out "$work/data"
wc -l "$work/data"/*.jsonl

step "t2m prompt: what the model sees for eval example 0"
$T2M prompt --split "$work/data/eval.jsonl" --index 0

step "t2m score --gold: every non-negative gold query passes the four layers"
for split in train eval held_out; do
  $T2M score --split "$work/data/$split.jsonl" --gold --run-name gold --output-dir "$work/runs" | grep -E "^gold|overall  |^examples"
done

step "t2m compare"
$T2M compare --output-dir "$work/runs"

step "t2m forward: logits of the built-in tiny model (CPU)"
$T2M forward --model tiny --ids '1,2,3,4;5,6,7,8' --out "$work/tiny_logits.safetensors"
ls -l "$work/tiny_logits.safetensors"

# The built-in tiny model has random weights and the byte tokenizer (one token per byte, ~1,000-token prompts):
# the numbers below show the pipeline working, not a useful model. --grad-accum 1 gives 4 updates, so
# training moves past the first warmup update (whose learning rate is 0, as in HF).
step "t2m train: LoRA on the tiny model (CPU), 16 examples, 1 epoch"
$T2M train --model tiny --data-dir "$work/data" --output-dir "$work/runs" --limit 16 --epochs 1 \
  --batch-size 4 --grad-accum 1 --max-len 2048
ls "$work/runs/tiny_r8" "$work/runs/tiny_r8/adapter"

step "t2m baseline: the base tiny model on 8 eval + 8 held-out examples"
$T2M baseline --model tiny --data-dir "$work/data" --output-dir "$work/runs" --limit 8 --max-len 2048 \
  --max-new-tokens 32 | grep -E "^generating|^tiny|overall  |^wrote"

step "t2m eval: the same with the trained adapter"
$T2M eval --model tiny --adapter "$work/runs/tiny_r8/adapter" --data-dir "$work/data" --output-dir "$work/runs" \
  --limit 8 --max-len 2048 --max-new-tokens 32 | grep -E "^generating|^tiny|overall  |^wrote"

step "t2m compare: gold, baseline and fine-tuned runs"
$T2M compare --output-dir "$work/runs"
echo
echo "demo done; outputs in $work"
