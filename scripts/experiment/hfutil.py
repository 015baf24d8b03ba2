"""Torch helpers shared by make_small_base.py and hf_peft_finetune.py (GPU machine only): tokenizing
prompt + completion pairs the way `t2m train` does, right-padded micro-batches, the completion-only loss on
the selected positions only (no [B, T, V] logits), and batched greedy generation the way `t2m eval` does."""
import random
import time

import torch
import torch.nn.functional as F

import expdata

IGNORE = -100


def start(seed, strict=False):
    """Seeds Python's and torch's generators, asks torch for deterministic algorithms, and returns a log
    function that prefixes the seconds since this call. strict: an op with no deterministic algorithm raises
    instead of warning, and cuDNN's attention backward (which SDPA picks on the H200 and which is
    nondeterministic by default, torch's warning says) takes its deterministic algorithm."""
    t0 = time.time()
    random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    torch.use_deterministic_algorithms(True, warn_only=not strict)
    torch.backends.cudnn.benchmark = False

    def log(*xs):
        print("[%6.1fs]" % (time.time() - t0), *xs, flush=True)
    return log


def ensure_tied(model, log=print):
    """With tie_word_embeddings, lm_head must be the embedding table (transformers ties them; this checks it and
    ties them itself if not, saying so). model is a *ForCausalLM."""
    if not getattr(model.config, "tie_word_embeddings", False):
        return
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    if head.weight.data_ptr() != emb.weight.data_ptr():
        log("warning: transformers did not tie lm_head to embed_tokens: tying them here")
        head.weight = emb.weight


def rope_theta(config):
    """rope_theta as transformers holds it (rope_parameters in transformers 5, rope_theta before)."""
    rp = getattr(config, "rope_parameters", None)
    if isinstance(rp, dict) and "rope_theta" in rp:
        return float(rp["rope_theta"])
    return float(getattr(config, "rope_theta", "nan"))


def special_ids(tok):
    """Ids of <|im_end|> and <|endoftext|> (the stops of t2m's generation; <|endoftext|> pads)."""
    ids = {s: tok.token_to_id(s) for s in (expdata.IM_END, expdata.END_OF_TEXT)}
    missing = [s for s, i in ids.items() if i is None]
    if missing:
        raise SystemExit("tokenizer lacks %s" % missing)
    return ids[expdata.IM_END], ids[expdata.END_OF_TEXT]


def encode_pairs(tok, examples, max_len, completion=None):
    """(ids, labels) per example as t2m train makes them: prompt and completion encoded separately, -100 on
    the prompt, cut from the right to max_len; an example whose completion is cut entirely is dropped.
    completion renders an example's completion (default expdata.completion, t2m's). Returns the pairs and
    the number dropped."""
    completion = completion or expdata.completion
    return encode_texts(tok, [(expdata.prompt(ex), completion(ex)) for ex in examples], max_len)


def encode_texts(tok, texts, max_len):
    """encode_pairs for (prompt, completion) strings."""
    ps = tok.encode_batch([p for p, _ in texts], add_special_tokens=False)
    cs = tok.encode_batch([c for _, c in texts], add_special_tokens=False)
    out, dropped = [], 0
    for p, c in zip(ps, cs):
        ids = (p.ids + c.ids)[:max_len]
        labels = ([IGNORE] * len(p.ids) + c.ids)[:max_len]
        if all(x == IGNORE for x in labels[1:]):
            dropped += 1
            continue
        out.append((ids, labels))
    return out, dropped


def pad_batch(pairs, pad_id, device="cuda"):
    """Right-padded ids and labels [B, T] (T the longest row). With right padding a causal model needs no
    attention mask: real positions never see the padding after them."""
    T = max(len(ids) for ids, _ in pairs)
    ids = torch.tensor([i + [pad_id] * (T - len(i)) for i, _ in pairs], device=device)
    lab = torch.tensor([l + [IGNORE] * (T - len(l)) for _, l in pairs], device=device)
    return ids, lab


def completion_loss_sum(decoder, lm_head, ids, labels):
    """Sum over completion positions of the next-token cross-entropy (fp32), and the number of positions.
    decoder is the Qwen2Model (model.model), lm_head the head; logits are made for the selected rows only."""
    h = decoder(input_ids=ids, use_cache=False).last_hidden_state
    tgt = labels[:, 1:]
    sel = tgt != IGNORE
    logits = lm_head(h[:, :-1][sel])
    return F.cross_entropy(logits.float(), tgt[sel], reduction="sum"), int(sel.sum())


@torch.no_grad()
def first_token_stats(model, tok, examples, max_len):
    """Per example, (probability, is_argmax) of the first token of its gold completion in t2m's JSON
    (expdata.completion, encoded apart from the prompt as t2m train encodes it) right after its prompt (first
    max_len tokens): how strongly the model picks the output format the scorer wants. One prompt per forward,
    so positions need no padding."""
    prompts = [e.ids[:max_len] for e in tok.encode_batch([expdata.prompt(ex) for ex in examples], add_special_tokens=False)]
    firsts = [e.ids[0] for e in tok.encode_batch([expdata.completion(ex) for ex in examples], add_special_tokens=False)]
    device = next(model.parameters()).device
    out = []
    for p, t in zip(prompts, firsts):
        probs = model(input_ids=torch.tensor([p], device=device)).logits[0, -1].float().softmax(-1)
        out.append((probs[t].item(), int(probs.argmax()) == t))
    return out


@torch.no_grad()
def greedy(model, tok, examples, max_len, max_new_tokens, batch, log=None):
    """Greedy outputs for examples, as t2m baseline/eval make them: the prompt's first max_len tokens,
    up to max_new_tokens new tokens, stopping at <|im_end|> or <|endoftext|>; the text decoded without
    special tokens and stripped. Batches of similar prompt lengths, left-padded."""
    im_end, eot = special_ids(tok)
    prompts = [e.ids[:max_len] for e in tok.encode_batch([expdata.prompt(ex) for ex in examples], add_special_tokens=False)]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outs = [None] * len(prompts)
    device = next(model.parameters()).device
    for b in range(0, len(order), batch):
        idx = order[b:b + batch]
        L = max(len(prompts[i]) for i in idx)
        ids = torch.tensor([[eot] * (L - len(prompts[i])) + prompts[i] for i in idx], device=device)
        att = torch.tensor([[0] * (L - len(prompts[i])) + [1] * len(prompts[i]) for i in idx], device=device)
        gen = model.generate(input_ids=ids, attention_mask=att, max_new_tokens=max_new_tokens, do_sample=False,
                             num_beams=1, eos_token_id=[im_end, eot], pad_token_id=eot)
        for k, i in enumerate(idx):
            new = gen[k, L:].tolist()
            for j, t in enumerate(new):
                if t in (im_end, eot):
                    new = new[:j]
                    break
            outs[i] = tok.decode(new, skip_special_tokens=True).strip()
        if log:
            log("generated %d/%d" % (min(b + batch, len(order)), len(order)))
    return outs
