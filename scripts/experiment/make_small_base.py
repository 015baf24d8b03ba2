#!/usr/bin/env python3
"""Makes the small "base" model of issue 12's experiment: a Qwen2ForCausalLM trained from scratch (full
training, HF transformers, fp32 master weights with bf16 autocast) on ChatML prompt + completion pairs of
`t2m data` output with only some intent kinds, completion-only loss, until it writes plausible queries.
Saves a Hugging Face checkpoint directory that `t2m baseline/train/eval --model DIR` and transformers load:
config.json (classic Qwen2 keys, see expdata.base_config), model.safetensors (bf16, tied embeddings, so no
lm_head.weight), tokenizer.json (copied), base_info.json (recipe, data, timings, checks, sha256).

  python3 scripts/experiment/make_small_base.py --data /tmp/synth/1 /tmp/synth/2 ... \
      --tokenizer .bench/tokenizer.json --out /tmp/t2m-exp/t2m-small-base [--check .bench/data/eval.jsonl]

Shape (defaults): hidden 384, 6 layers, 6 query heads over 2 KV heads (head_dim 64), SwiGLU 1024, vocabulary
151,936 (the tokenizer's 151,665 ids padded as Qwen pads), tied input/output embeddings, rope_theta 10000:
about 67M parameters, 58M of them the embedding. Meant to be deterministic for a seed on the same machine and
software (seeded init and order, torch deterministic algorithms, strict since the tenth session: not yet
checked on the GPU by making a base twice); --time-limit stops earlier only as a safety net and
says so (the result is then not the recipe's).

Training data: train.jsonl of every --data folder (never held_out.jsonl: its collections stay unseen by the
base, as they are by the fine-tunes), only the examples whose gold output is of one of --kinds (told apart by
the output's shape, expdata.kind), plus --rename-copies copies of each whose fields carry fresh random names
(expdata.rename_fields): without them a base this small recalls the field names of the generator's 18
collections instead of reading them from the schema, and no fine-tune can teach it to copy (measured: zero-shot
fields 4% on held_out, fine-tunes no better). --rename-collections gives the copies fresh collection names and
shuffled fields too; --name-words vocab draws the names from the tokenizer's lowercase words (expdata.vocab_words)
and --spelling-reps N adds sequences that ask for each of those words in its quoted form given its spaced form
(expdata.spelling_pairs: the two are different tokens, and a model trained from scratch cannot write a word's
quoted token unless trained to; measured: not learned in 2,000 steps, see README.md). At the end it prints
greedy samples and, on the first --data folder's eval.jsonl (the same kinds) and on --check (a published
split, zero-shot), the parse rate (layer 1, syntax) and exact-match rate of its outputs (with --output-format
shell or bare, exact match in the base's own format: expdata.own_format_match)."""
import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
import argparse
import functools
import hashlib
import json
import math
import random
import shutil
import sys
import time

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, Qwen2Config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import expdata  # noqa: E402
import hfutil  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--data", nargs="+", required=True, help="folders written by `t2m data --seed N --out DIR`")
ap.add_argument("--tokenizer", required=True, help="the Qwen2.5 tokenizer.json")
ap.add_argument("--out", required=True, help="checkpoint directory to write")
ap.add_argument("--check", nargs="*", default=[], help="split files for the zero-shot check at the end")
ap.add_argument("--kinds", default=",".join(expdata.BASE_KINDS), help="intent kinds to train on (expdata.KINDS)")
ap.add_argument("--seed", type=int, default=1234)
ap.add_argument("--hidden", type=int, default=384)
ap.add_argument("--layers", type=int, default=6)
ap.add_argument("--heads", type=int, default=6)
ap.add_argument("--kv-heads", type=int, default=2)
ap.add_argument("--intermediate", type=int, default=1024)
ap.add_argument("--vocab", type=int, default=151936)
ap.add_argument("--rope-theta", type=float, default=10000.0)
ap.add_argument("--untied", action="store_true", help="separate lm_head (default: tied, as small Qwen2.5 models)")
ap.add_argument("--max-len", type=int, default=512)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--steps", type=int, default=3000)
ap.add_argument("--rename-copies", type=int, default=3,
                help="per training example, this many extra copies whose fields carry fresh names (expdata.rename_fields), "
                     "so the base learns to read field names from the schema instead of recalling those of the 18 collections")
ap.add_argument("--rename-collections", action="store_true",
                help="the renamed copies also get a fresh collection name and a shuffled field order")
ap.add_argument("--name-words", choices=("fixed", "vocab", "fields"), default="fixed",
                help="words the renamed copies' names are made of: expdata.NAME_WORDS (78), every lowercase word "
                     "of the tokenizer (expdata.vocab_words, 24,390 for Qwen2.5), or the words of the field names in "
                     "every split of the --data folders (expdata.field_words, as for --spelling-words fields)")
ap.add_argument("--spelling-reps", type=int, default=0,
                help="add spelling sequences (expdata.spelling_pairs) in which every word of expdata.vocab_words occurs "
                     "this many times: each word's quoted (JSON) token from its spaced (prompt) token, which a model "
                     "trained from scratch cannot know for words it never wrote")
ap.add_argument("--spelling-per-seq", type=int, default=40, help="names per spelling sequence")
ap.add_argument("--spelling-words", choices=("vocab", "fields"), default="vocab",
                help="the words of the spelling sequences: every lowercase word of the tokenizer (expdata.vocab_words), "
                     "or the words of the field names in every split of the --data folders, held_out.jsonl included "
                     "(expdata.field_words: the generator's vocabulary, as a pretrained model knows its words; only the "
                     "words, never the held-out schemas or queries)")
ap.add_argument("--output-format", choices=tuple(expdata.RENDERERS), default="json",
                help="how the base's completions are written: t2m's JSON (data.Completion); as mongosh queries "
                     "(expdata.shell_completion: db.<collection>.find(...) / .aggregate([...])), so that the base knows "
                     "the queries but not the output format the scorer wants, as a pretrained model does not; or bare "
                     "(expdata.bare_completion: t2m's JSON without its \"type\" key), so that only the wrapper the "
                     "scorer's syntax layer requires is missing; or mixed (expdata.mixed_completion: finds in t2m's JSON, "
                     "aggregations as mongosh), so that the base writes one type of query in the wrong format")
ap.add_argument("--mixed-json-frac", type=float, default=0.0,
                help="with --output-format mixed: the share of aggregations written in t2m's JSON anyway")
ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--min-lr-ratio", type=float, default=0.1, help="cosine decays to this fraction of --lr")
ap.add_argument("--warmup", type=int, default=100)
ap.add_argument("--weight-decay", type=float, default=0.1)
ap.add_argument("--time-limit", type=float, default=240, help="seconds of training after which it stops early (safety net)")
ap.add_argument("--check-n", type=int, default=64, help="examples of each check set to generate for")
ap.add_argument("--max-new-tokens", type=int, default=256)
ap.add_argument("--gen-batch", type=int, default=64)
a = ap.parse_args()

t_start = time.time()
# strict: the bases of the ninth and tenth sessions, made with warn_only, differed between calls (sha256
# 3d8a1a92…, ffe7bcd7…, 84f75250… for one command): cuDNN's attention backward was the one op torch warned of.
log = hfutil.start(a.seed, strict=True)

kinds = [k for k in a.kinds.split(",") if k]
tok = Tokenizer.from_file(a.tokenizer)
im_end, eot = hfutil.special_ids(tok)
if tok.get_vocab_size() > a.vocab:
    raise SystemExit("tokenizer has %d ids, more than --vocab %d" % (tok.get_vocab_size(), a.vocab))

train_ex, seen = [], 0
for d in a.data:
    exs = expdata.read_jsonl(os.path.join(d, "train.jsonl"))
    seen += len(exs)
    train_ex += expdata.select(exs, kinds)
originals = len(train_ex)
vwords = expdata.vocab_words(tok.get_vocab()) if a.name_words == "vocab" or (a.spelling_reps > 0 and a.spelling_words == "vocab") else []
fwords = expdata.field_words([os.path.join(d, f) for d in a.data for f in ("train.jsonl", "eval.jsonl", "held_out.jsonl")
                              if os.path.exists(os.path.join(d, f))])
name_words = {"vocab": vwords, "fields": fwords}.get(a.name_words, expdata.NAME_WORDS)
rename_rng = random.Random(a.seed + 1)
train_ex = train_ex + [expdata.rename_fields(ex, rename_rng, a.rename_collections, words=name_words)
                       for _ in range(a.rename_copies) for ex in train_ex[:originals]]
render = expdata.RENDERERS[a.output_format]
if a.output_format == "mixed":
    render = functools.partial(expdata.mixed_completion, json_frac=a.mixed_json_frac)
seqs, dropped = hfutil.encode_pairs(tok, train_ex, a.max_len, render)
swords = fwords if a.spelling_words == "fields" else vwords
spelling = expdata.spelling_pairs(swords, random.Random(a.seed + 2), a.spelling_reps, a.spelling_per_seq) if a.spelling_reps > 0 else []
spell_seqs, spell_dropped = hfutil.encode_texts(tok, spelling, a.max_len)
seqs += spell_seqs
dropped += spell_dropped
n_tok = sum(len(s[0]) for s in seqs)
n_compl = sum(sum(x != hfutil.IGNORE for x in s[1][1:]) for s in seqs)
log("data: %d of %d examples of %d folders have kinds %s, + %d copies with renamed fields (names from %s), + %d spelling sequences "
    "(%d words x %d); %d sequences (%d dropped by --max-len), %d tokens, %d completion tokens; %.1f epochs in %d steps of %d" % (
        originals, seen, len(a.data), ",".join(kinds), len(train_ex) - originals,
        "%d %s words" % (len(name_words), a.name_words),
        len(spell_seqs), len(swords) if a.spelling_reps > 0 else 0, a.spelling_reps, len(seqs), dropped, n_tok, n_compl,
        a.steps * a.batch / len(seqs), a.steps, a.batch))
if a.output_format != "json":
    log("completions as %s, e.g. %r" % ({"shell": "mongosh queries", "bare": "JSON without \"type\"",
                                         "mixed": "JSON finds and mongosh aggregations"}[a.output_format],
                                        render(train_ex[0])[:200]))
if spelling:
    log("spelling sample: %r -> %r" % (spelling[0][0][-120:], spelling[0][1][:120]))

config = expdata.base_config(hidden=a.hidden, layers=a.layers, heads=a.heads, kv_heads=a.kv_heads,
                             intermediate=a.intermediate, vocab=a.vocab, rope_theta=a.rope_theta, tied=not a.untied)
# The classic keys plus rope_parameters, which transformers 5 reads (older versions keep it as an attribute).
cfg = Qwen2Config(**{k: v for k, v in config.items() if k not in ("architectures", "torch_dtype", "transformers_version")},
                  rope_parameters={"rope_type": "default", "rope_theta": a.rope_theta})
try:
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
except TypeError:
    model = AutoModelForCausalLM.from_config(cfg)
model = model.cuda().float()
hfutil.ensure_tied(model, log)
theta = hfutil.rope_theta(model.config)
if theta == theta and theta != a.rope_theta:  # (nan: this transformers keeps it elsewhere; not checked)
    raise SystemExit("transformers' config has rope_theta %s, the checkpoint will say %s" % (theta, a.rope_theta))
n_params = sum(p.numel() for p in model.parameters())
log("model: %.1fM parameters (%s embeddings), config %s" % (n_params / 1e6, "untied" if a.untied else "tied",
                                                           json.dumps({k: config[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size", "vocab_size", "rope_theta")})))

decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=a.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)


def lr_at(step):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    p = (step - a.warmup) / max(1, a.steps - a.warmup)
    return a.lr * (a.min_lr_ratio + (1 - a.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


rng = random.Random(a.seed)
order, pos = [], 0
model.train()
t_train = time.time()
tokens_done, steps_done, stopped_early, last_loss = 0, 0, False, None
for step in range(a.steps):
    if pos + a.batch > len(order):  # a fresh shuffle each pass over the data
        order, pos = list(range(len(seqs))), 0
        rng.shuffle(order)
    chunk = [seqs[i] for i in order[pos:pos + a.batch]]
    pos += a.batch
    ids, lab = hfutil.pad_batch(chunk, eot)
    for g in opt.param_groups:
        g["lr"] = lr_at(step)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        s, n = hfutil.completion_loss_sum(model.model, model.lm_head, ids, lab)
    loss = s / max(1, n)
    loss.backward()
    gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    tokens_done += sum(len(c[0]) for c in chunk)
    steps_done += 1
    if step % 50 == 0 or step == a.steps - 1:
        last_loss = loss.item()
        el = time.time() - t_train
        log("step %d/%d  loss %.4f  lr %.2e  grad_norm %.3f  %.0f tok/s" % (step + 1, a.steps, last_loss, lr_at(step), gn.item(), tokens_done / el))
    if time.time() - t_train > a.time_limit:
        stopped_early = True
        log("WARNING: --time-limit %.0f s reached after %d of %d steps: stopping (not the recipe's model; "
            "raise --time-limit or lower --steps)" % (a.time_limit, steps_done, a.steps))
        break
torch.cuda.synchronize()
train_s = time.time() - t_train
log("trained %d steps in %.1f s (%.0f tok/s), last loss %.4f, peak GPU memory %.1f GiB" % (
    steps_done, train_s, tokens_done / train_s, last_loss, torch.cuda.max_memory_allocated() / 2**30))

# Save: bf16 tensors under HF's names; a tied model has no lm_head.weight (as save_pretrained writes it).
os.makedirs(a.out, exist_ok=True)
state = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()
         if not (k == "lm_head.weight" and not a.untied)}
st_path = os.path.join(a.out, "model.safetensors")
save_file(state, st_path, metadata={"format": "pt"})
with open(os.path.join(a.out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
shutil.copy(a.tokenizer, os.path.join(a.out, "tokenizer.json"))
sha = hashlib.sha256(open(st_path, "rb").read()).hexdigest()
log("wrote %s (model.safetensors sha256 %s)" % (a.out, sha))

# Checks: the saved bf16 weights, greedy, as t2m baseline runs them (t2m quantizes to NF4 by default).
model = AutoModelForCausalLM.from_pretrained(a.out, dtype=torch.bfloat16, attn_implementation="sdpa").cuda().eval()
hfutil.ensure_tied(model, log)
if hfutil.rope_theta(model.config) != a.rope_theta:
    log("WARNING: transformers reloads %s with rope_theta %s, not %s: HF runs on it would differ from t2m's" % (
        a.out, hfutil.rope_theta(model.config), a.rope_theta))
checks, check_error = {}, None
try:
    sets = [("synthetic eval (kinds trained)", expdata.select(expdata.read_jsonl(os.path.join(a.data[0], "eval.jsonl")), kinds))]
    sets += [("%s (zero-shot)" % c, expdata.read_jsonl(c)) for c in a.check]
    for name, exs in sets:
        exs = exs[:a.check_n]
        t0 = time.time()
        outs = hfutil.greedy(model, tok, exs, a.max_len, a.max_new_tokens, a.gen_batch)
        parse = sum(expdata.syntax_ok(o) for o in outs) / max(1, len(outs))
        # In the base's own format: the gold output (json), or the rendered gold text for text (shell, bare).
        exact = sum(expdata.own_format_match(o, ex, a.output_format, render) for o, ex in zip(outs, exs)) / max(1, len(outs))
        checks[name] = {"n": len(outs), "parse_rate": round(parse, 4), "exact_match": round(exact, 4), "seconds": round(time.time() - t0, 1)}
        log("check %s: %d examples, parse rate (syntax layer) %.1f%%, exact match %.1f%% (%.1f s)" % (
            name, len(outs), 100 * parse, 100 * exact, time.time() - t0))
        for ex, o in list(zip(exs, outs))[:3]:
            print("    intent: %s\n    gold:   %s\n    output: %s" % (ex["intent"], json.dumps(ex["output"]), o[:300]), flush=True)
except Exception as e:  # the checkpoint is written: a failed check must not cost the experiment its base
    import traceback
    traceback.print_exc()
    check_error = repr(e)
    log("WARNING: the checks failed (%s); the checkpoint in %s is complete" % (check_error, a.out))

info = {"recipe": {k: v for k, v in vars(a).items() if k not in ("out",)}, "kinds": kinds, "config": config,
        "output_format": a.output_format, "train_examples": len(train_ex), "spelling_sequences": len(spell_seqs), "vocab_words": len(vwords), "spelling_words": len(swords), "sequences": len(seqs), "tokens": n_tok, "steps": steps_done,
        "stopped_early": stopped_early, "train_seconds": round(train_s, 1), "last_loss": last_loss,
        "params_m": round(n_params / 1e6, 2), "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
        "model_safetensors_sha256": sha, "checks": checks, "check_error": check_error, "seconds": round(time.time() - t_start, 1)}
with open(os.path.join(a.out, "base_info.json"), "w") as f:
    json.dump(info, f, indent=2)
print(json.dumps({"base": a.out, "steps": steps_done, "stopped_early": stopped_early, "train_s": round(train_s, 1),
                  "total_s": info["seconds"], "sha256": sha[:16], "checks": checks}), flush=True)
