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

# The built-in tiny model has random weights and the byte tokenizer (one token per byte, ~1,500-token prompts,
# so --max-len defaults to 2048): the numbers below show the pipeline working, not a useful model. The recipe
# file sets the run's shape; --grad-accum 1 on the command line overrides its 4 and gives 4 updates, so
# training moves past the first warmup update (whose learning rate is 0, as in HF).
step "t2m train: LoRA on the tiny model (CPU), 16 examples, 1 epoch, from a recipe file"
cat > "$work/recipe.yaml" <<'YAML'
epochs: 1
batch-size: 4
grad-accum: 4
lr-scheduler: linear
lora-dropout: 0.05
target-modules: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj]
YAML
cat "$work/recipe.yaml"
# --eval-every 2: after updates 2 and 4, generate for the first 2 examples of eval and held_out and log the pass
# rates; curves.png draws them with the losses (docs/curves.png in the README is this picture).
$T2M train --model tiny --data-dir "$work/data" --output-dir "$work/runs" --limit 16 --config "$work/recipe.yaml" \
  --grad-accum 1 --eval-every 2 --eval-subset 2 --max-new-tokens 8
ls "$work/runs/tiny_r8" "$work/runs/tiny_r8/adapter"
grep '"rates"' "$work/runs/tiny_r8/metrics.jsonl" | head -1

step "t2m baseline: the base tiny model on 8 eval + 8 held-out examples"
$T2M baseline --model tiny --data-dir "$work/data" --output-dir "$work/runs" --limit 8 --max-len 2048 \
  --max-new-tokens 32 | grep -E "^generating|^tiny|overall  |^wrote"

step "t2m eval: the same with the trained adapter"
$T2M eval --model tiny --adapter "$work/runs/tiny_r8/adapter" --data-dir "$work/data" --output-dir "$work/runs" \
  --limit 8 --max-len 2048 --max-new-tokens 32 | grep -E "^generating|^tiny|overall  |^wrote"

step "t2m ask: the fine-tuned tiny model answers eval example 0 greedily, then sampled (seeded)"
ADAPTER="$work/runs/tiny_r8/adapter"
$T2M ask --model tiny --adapter "$ADAPTER" --split "$work/data/eval.jsonl" --index 0 --max-len 2048 --max-new-tokens 16
$T2M ask --model tiny --adapter "$ADAPTER" --split "$work/data/eval.jsonl" --index 0 --max-len 2048 --max-new-tokens 16 \
  --temperature 0.8 --top-p 0.9 --seed 1 | grep -E "^model|^overall"

step "t2m ask: a schema file and two intents on stdin (the model stays loaded)"
cat > "$work/posts.json" <<'JSON'
{"collection": "posts", "domain": "social",
 "fields": [{"name": "likes", "type": "int", "role": "measure", "description": "Number of likes"},
            {"name": "topic", "type": "string", "role": "category", "description": "Post topic", "enum_values": ["tech", "sports"]}]}
JSON
printf 'Count posts per topic\nTop 3 posts by likes\n' | $T2M ask --model tiny --adapter "$ADAPTER" --schema "$work/posts.json" \
  --max-len 2048 --max-new-tokens 16 | grep -E "^intent|^overall"

# merge and export need a tokenizer.json to ship with the model: the real Qwen2.5 one beside the repository.
TOK=../shared/tokenizers/qwen2.5/tokenizer.json
if [ -f "$TOK" ]; then
  step "t2m merge: adapter folded into the tiny model's weights, a Hugging Face directory (bf16)"
  $T2M merge --model tiny --adapter "$ADAPTER" --tokenizer "$TOK" --out "$work/merged"
  ls "$work/merged"

  step "t2m export --gguf: the merged model for llama.cpp / ollama (Q8_0)"
  $T2M export --model "$work/merged" --gguf "$work/tiny-r8-q8_0.gguf" --type q8_0
else
  step "t2m merge / export: skipped (no $TOK)"
fi

step "t2m --version"
$T2M --version

step "t2m compare: gold, baseline and fine-tuned runs"
$T2M compare --output-dir "$work/runs"
echo
echo "demo done; outputs in $work"
