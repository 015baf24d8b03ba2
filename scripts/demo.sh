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

step "not landed yet: t2m train / baseline / eval (generation and the training loop)"
if $T2M train --model tiny --data-dir "$work/data" --output-dir "$work/runs" 2>&1; then
  echo "unexpected: train succeeded"; exit 1
fi
echo
echo "demo done; outputs in $work"
