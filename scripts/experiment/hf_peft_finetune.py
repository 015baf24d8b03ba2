#!/usr/bin/env python3
"""The HF PEFT row of issue 12's table: the LoRA fine-tune `t2m train` does with its defaults, in Hugging Face
transformers + PEFT with bf16 base weights (bitsandbytes is not on the GPU machine, so no NF4), then greedy
generation on eval and held_out, written as predictions files that `t2m score` reads.

  python3 scripts/experiment/hf_peft_finetune.py --base DIR --data .bench/data --out /tmp/t2m-exp/hf

t2m's defaults, one for one: LoRA r 8, alpha 16, dropout 0.05 on q,k,v,o,gate,up (PEFT's init: A Kaiming-
uniform, B zero; fp32 adapter weights over the bf16 base); AdamW (torch, fp32 state, betas 0.9/0.999, eps 1e-8,
no weight decay) at peak lr 2e-4 on transformers' cosine schedule (get_cosine_schedule_with_warmup's formula,
num_cycles 0.5, in a LambdaLR) with ceil(5% of the updates) of warmup; 3 epochs of micro-batches of 4 (a fresh
seeded shuffle per epoch) × 4 accumulated; loss over completion tokens only, each micro-batch's sum divided by
the completion tokens of its whole accumulation window (TRL's normalization, as t2m's); grad-norm clipping at
1.0; prompt + completion cut to 512 tokens from the right, an example whose completion is cut entirely dropped;
after each epoch the eval loss (each eval micro-batch's mean completion loss, weighted by its rows, no dropout)
and the best epoch's adapter kept (load_best_model_at_end). Updates per epoch = ceil(ceil(N / 4) / 4), the last
window shorter, as t2m counts them.

Not the same as t2m (on purpose or unavoidably): the order of the examples (Python's seeded shuffle, not t2m's
PCG), the LoRA initial values and dropout masks (torch's RNG), bf16 base weights instead of NF4, padding to
the longest row of each micro-batch (t2m pads to a multiple of 64; no effect on the loss), and the LoRA
branch's arithmetic: PEFT computes lora_B(lora_A(x)) in fp32, t2m's GPU training from bf16 operands (fp32
masters). --lora-bf16-ops runs the training forward under torch.autocast(bfloat16), so the fp32 adapter's
products take bf16 operands as t2m's do (an experiment on that difference; generation is unchanged).

Generation: greedy, the prompt's first 512 tokens, up to 256 new tokens, stop at <|im_end|> or <|endoftext|>,
decoded without special tokens and stripped — t2m eval's rules. Writes OUT/eval_predictions.jsonl and
OUT/held_out_predictions.jsonl ({"prediction": raw output} per example, in the split's order), OUT/adapter
(PEFT), OUT/hf_metrics.json (per-update loss/lr/grad norm, eval losses, timings)."""
import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
import argparse
import contextlib
import json
import math
import random
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import expdata  # noqa: E402
import hfutil  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--base", required=True, help="the base checkpoint directory (make_small_base.py's --out)")
ap.add_argument("--data", required=True, help="folder with train.jsonl, eval.jsonl, held_out.jsonl")
ap.add_argument("--out", required=True)
ap.add_argument("--tokenizer", default="", help="default: BASE/tokenizer.json")
ap.add_argument("--lora-r", type=int, default=8)
ap.add_argument("--lora-alpha", type=int, default=0, help="0: 2r")
ap.add_argument("--lora-dropout", type=float, default=0.05)
ap.add_argument("--target-modules", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj")
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--batch-size", type=int, default=4)
ap.add_argument("--grad-accum", type=int, default=4)
ap.add_argument("--lr", type=float, default=2e-4)
ap.add_argument("--warmup-ratio", type=float, default=0.05)
ap.add_argument("--max-grad-norm", type=float, default=1.0)
ap.add_argument("--max-len", type=int, default=512)
ap.add_argument("--max-new-tokens", type=int, default=256)
ap.add_argument("--gen-batch", type=int, default=64)
ap.add_argument("--seed", type=int, default=42)
ap.add_argument("--limit", type=int, default=0, help="first N examples of each split (quick runs; 0: all)")
ap.add_argument("--log-every", type=int, default=10)
ap.add_argument("--lora-bf16-ops", action="store_true",
                help="training forward under torch.autocast(bfloat16): the adapter's products from bf16 operands, as t2m's GPU training")
a = ap.parse_args()
t_start = time.time()
log = hfutil.start(a.seed)
os.makedirs(a.out, exist_ok=True)


def split(name):
    exs = expdata.read_jsonl(os.path.join(a.data, name + ".jsonl"))
    return exs[:a.limit] if a.limit > 0 else exs


train_ex, eval_ex, held_ex = split("train"), split("eval"), split("held_out")
tok = Tokenizer.from_file(a.tokenizer or os.path.join(a.base, "tokenizer.json"))
im_end, eot = hfutil.special_ids(tok)
train_seqs, dropped = hfutil.encode_pairs(tok, train_ex, a.max_len)
eval_seqs, eval_dropped = hfutil.encode_pairs(tok, eval_ex, a.max_len)
log("data: %d train sequences (%d dropped by --max-len %d), %d eval sequences (%d dropped)" % (
    len(train_seqs), dropped, a.max_len, len(eval_seqs), eval_dropped))

model = AutoModelForCausalLM.from_pretrained(a.base, dtype=torch.bfloat16, attn_implementation="sdpa").cuda()
hfutil.ensure_tied(model, log)
log("base %s: rope_theta %s, tied %s, %.1fM parameters" % (a.base, hfutil.rope_theta(model.config), model.config.tie_word_embeddings,
                                                         sum(p.numel() for p in model.parameters()) / 1e6))
alpha = a.lora_alpha or 2 * a.lora_r
model = get_peft_model(model, LoraConfig(r=a.lora_r, lora_alpha=alpha, lora_dropout=a.lora_dropout, bias="none",
                                         task_type="CAUSAL_LM", target_modules=a.target_modules.split(",")))
inner = model.base_model.model  # the Qwen2ForCausalLM, LoRA layers injected in place
decoder, lm_head = inner.model, inner.lm_head
params = [p for p in model.parameters() if p.requires_grad]
log("LoRA r %d alpha %d dropout %g on %s: %d trainable parameters (%s)" % (
    a.lora_r, alpha, a.lora_dropout, a.target_modules, sum(p.numel() for p in params), sorted({str(p.dtype) for p in params})))

n_batches = math.ceil(len(train_seqs) / a.batch_size)
windows = math.ceil(n_batches / a.grad_accum)
total = windows * a.epochs
warmup = math.ceil(total * a.warmup_ratio)
opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


def lr_lambda(k):
    """transformers' get_cosine_schedule_with_warmup (num_cycles 0.5), which t2m's train.Schedule is: the rate of
    update k (0-based); the first warmup update has rate 0."""
    if k < warmup:
        return k / max(1, warmup)
    progress = (k - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
log("training: %d micro-batches of %d, %d updates per epoch × %d epochs = %d updates (warmup %d, cosine, peak lr %g)%s" % (
    n_batches, a.batch_size, windows, a.epochs, total, warmup, a.lr,
    ", forward under autocast(bfloat16)" if a.lora_bf16_ops else ""))


def eval_loss():
    model.eval()
    s, rows = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(eval_seqs), a.batch_size):
            chunk = eval_seqs[i:i + a.batch_size]
            ids, lab = hfutil.pad_batch(chunk, eot)
            ls, n = hfutil.completion_loss_sum(decoder, lm_head, ids, lab)
            if n:
                s += ls.item() / n * len(chunk)
                rows += len(chunk)
    model.train()
    return s / rows if rows else float("nan")


metrics, eval_losses, best, best_state, best_epoch = [], [], None, None, None
step = 0
model.train()
t_train = time.time()
for epoch in range(a.epochs):
    order = list(range(len(train_seqs)))
    random.Random(a.seed + epoch).shuffle(order)
    batches = [[train_seqs[i] for i in order[b:b + a.batch_size]] for b in range(0, len(order), a.batch_size)]
    for w in range(windows):
        win = [hfutil.pad_batch(c, eot) for c in batches[w * a.grad_accum:(w + 1) * a.grad_accum]]
        n_items = sum(int((lab[:, 1:] != hfutil.IGNORE).sum()) for _, lab in win)
        loss = 0.0
        for ids, lab in win:
            with torch.autocast("cuda", dtype=torch.bfloat16) if a.lora_bf16_ops else contextlib.nullcontext():
                ls, _ = hfutil.completion_loss_sum(decoder, lm_head, ids, lab)
            (ls / n_items).backward()
            loss += ls.item() / n_items
        gn = torch.nn.utils.clip_grad_norm_(params, a.max_grad_norm).item()
        lr = sched.get_last_lr()[0]
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        metrics.append({"step": step, "loss": round(loss, 6), "lr": lr, "grad_norm": round(gn, 6)})
        if step % a.log_every == 0 or step == 1 or step == total:
            log("step %d/%d  epoch %.2f  loss %.4f  lr %.3g  grad_norm %.3f" % (step, total, epoch + (w + 1) / windows, loss, lr, gn))
    el = eval_loss()
    eval_losses.append(el)
    note = ""
    if best is None or el < best:
        best, best_epoch = el, epoch + 1
        best_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        note = ", best so far: adapter kept"
    log("epoch %d: eval_loss %.4f on %d sequences%s" % (epoch + 1, el, len(eval_seqs), note))
torch.cuda.synchronize()
train_s = time.time() - t_train
with torch.no_grad():
    for n, p in model.named_parameters():
        if n in best_state:
            p.copy_(best_state[n])
model.save_pretrained(os.path.join(a.out, "adapter"))
log("trained %d updates in %.1f s; adapter of epoch %d (eval_loss %.4f) in %s" % (step, train_s, best_epoch, best, os.path.join(a.out, "adapter")))

model.eval()
# How far the fine-tune moved the output format: the gold first token's probability on eval, by query type,
# with the adapter off (the base) and on. A diagnostic: a failure is logged and the run goes on.
first_token = {}
try:
    types = [ex["output"].get("type", "error") for ex in eval_ex]
    with model.disable_adapter():
        first_token["base"] = hfutil.first_token_stats(model, tok, eval_ex, a.max_len)
    first_token["adapter"] = hfutil.first_token_stats(model, tok, eval_ex, a.max_len)
    for typ in sorted(set(types)):
        row = []
        for side in ("base", "adapter"):
            st = [x for x, t in zip(first_token[side], types) if t == typ]
            row.append("%s mean p %.3f, argmax %d of %d" % (side, sum(p for p, _ in st) / len(st), sum(m for _, m in st), len(st)))
        log("first token of the gold completion, eval %s: %s" % (typ, "; ".join(row)))
except Exception as e:  # noqa: BLE001
    log("WARNING: first-token statistics failed: %r" % (e,))
gen_s = {}
for name, exs in (("eval", eval_ex), ("held_out", held_ex)):
    t0 = time.time()
    outs = hfutil.greedy(model, tok, exs, a.max_len, a.max_new_tokens, a.gen_batch)
    gen_s[name] = round(time.time() - t0, 1)
    path = os.path.join(a.out, name + "_predictions.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for o in outs:
            f.write(json.dumps({"prediction": o}, ensure_ascii=False) + "\n")
    parse = sum(expdata.syntax_ok(o) for o in outs) / max(1, len(outs))
    log("generated %s: %d outputs in %.1f s, syntax-layer pass %.1f%% (t2m score gives the real numbers) -> %s" % (
        name, len(outs), gen_s[name], 100 * parse, path))

summary = {"system": "hf-peft-bf16-lora", "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
           "settings": {k: v for k, v in vars(a).items()}, "train_sequences": len(train_seqs), "updates": step,
           "warmup": warmup, "eval_losses": eval_losses, "best_epoch": best_epoch, "train_seconds": round(train_s, 1),
           "generation_seconds": gen_s, "total_seconds": round(time.time() - t_start, 1),
           "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}
with open(os.path.join(a.out, "hf_metrics.json"), "w") as f:
    json.dump(dict(summary, updates_log=metrics,
                   first_token={k: [round(p, 4) for p, _ in v] for k, v in first_token.items()}), f, indent=1)
print(json.dumps(summary), flush=True)
