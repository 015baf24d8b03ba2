"""Pure-Python pieces shared by the experiment's scripts (stdlib only, no torch): t2m's ChatML prompt and
completion, the intent kind of a `t2m data` example told from its gold output, and JSONL reading.

The prompt is word for word t2m's data.Prompt (data/prompt.go) and the completion data.Completion:
json.dumps(output, ensure_ascii=False) + "<|im_end|>". test_expdata.py checks both byte for byte against
`t2m prompt`, and the kind classifier against every example of several `t2m data` seeds."""
import json
import os
import sys
import zlib

IM_START, IM_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"

# The prompt and completion are the fixture renderer's (scripts/fixtures/render_prompts.py, which the Go tests
# check against data.Prompt on every shared example); the JSON extraction and the syntax layer are the
# reference scorer's (eval/testdata/reference/make_verdicts.py, checked against eval's verdicts).
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(_ROOT, "scripts", "fixtures"), os.path.join(_ROOT, "eval", "testdata", "reference")]
from render_prompts import SYSTEM, user_message, prompt, completion  # noqa: E402,F401
from make_verdicts import extract as extract_json, syntax_ok as _syntax_ok_parsed  # noqa: E402


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# The 19 intent kinds of data/synth_intents.go and data/synth_aggs.go, plus "negative" (g.negative).
KINDS = ("filter_eq", "filter_cmp", "filter_bool", "enum_in", "exists", "projection", "time_range", "count",
         "group_agg", "group_count", "filtered_group", "multi_group", "top_n", "date_bucket", "bucket", "or_filter",
         "and_filter", "text_search", "distinct", "negative")

# The base model's default diet: single-condition and two-condition filters and plain $group aggregations.
# Left out, so that the published data set has shapes the base never wrote: projections (find with
# "projection"), counts ($count), top-N ($sort/$limit), filtered groups ($match then $group), date buckets,
# $bucket and negatives ({"error": ...}).
BASE_KINDS = ("filter_eq", "filter_cmp", "filter_bool", "enum_in", "exists", "time_range", "and_filter", "or_filter",
              "text_search", "group_agg", "group_count", "multi_group", "distinct")


def _is_date(v):
    return isinstance(v, dict) and list(v) == ["$date"]


def _date_range(f):
    """f is a filter on one field by dates ({"$gte": {"$date": ...}} and/or "$lt"/"$lte")."""
    if len(f) != 1:
        return False
    (v,) = f.values()
    return isinstance(v, dict) and bool(v) and all(_is_date(x) for x in v.values()) and set(v) <= {"$gte", "$lt", "$lte"}


def kind(output):
    """The intent kind that produced a `t2m data` gold output, of either style (`--style t2m`, data/synth*.go;
    `--style published`, data/published*.go: its time ranges project the measure and the date, and its
    existence filters add "$ne": null), told from its shape. Raises ValueError for a shape no kind makes."""
    if "error" in output:
        return "negative"
    if output.get("type") == "find":
        if "projection" in output:
            return "time_range" if _date_range(output["filter"]) else "projection"
        f = output["filter"]
        if "$or" in f:
            return "or_filter"
        if len(f) == 2:
            return "and_filter"
        if len(f) == 1:
            (v,) = f.values()
            if isinstance(v, bool):
                return "filter_bool"
            if isinstance(v, str):
                return "filter_eq"
            if isinstance(v, dict) and v:
                ops = list(v)
                if ops == ["$regex"]:
                    return "text_search"
                if ops in (["$in"], ["$nin"]):
                    return "enum_in"
                if ops == ["$exists"] or (ops == ["$exists", "$ne"] and v["$ne"] is None):
                    return "exists"
                if _date_range(f):
                    return "time_range"
                if len(ops) == 1 and ops[0] in ("$gt", "$gte", "$lt", "$lte") and isinstance(v[ops[0]], (int, float)):
                    return "filter_cmp"
    elif output.get("type") == "aggregate":
        p = output["pipeline"]
        stages = [next(iter(s)) for s in p]
        if stages[-1] == "$count" and stages[:-1] in ([], ["$match"]):
            return "count"
        if stages == ["$sortByCount"]:
            return "group_count"
        if stages == ["$bucket"]:
            return "bucket"
        if stages[:2] == ["$sort", "$limit"]:
            return "top_n"
        if stages == ["$match", "$group"]:
            return "filtered_group"
        if stages[0] == "$group" and stages[1:] in ([], ["$sort"]):
            g = p[0]["$group"]
            gid = g["_id"]
            if isinstance(gid, dict):
                return "date_bucket" if any(k.startswith("$") for k in gid) else "multi_group"
            if len(g) == 1:
                return "distinct"
            if g.get("count") == {"$sum": 1}:
                return "group_count"
            return "group_agg"
    raise ValueError("no intent kind makes this output: " + json.dumps(output)[:200])


def select(examples, kinds):
    """The examples whose gold output is of one of kinds (in their order)."""
    kinds = set(kinds)
    unknown = kinds - set(KINDS)
    if unknown:
        raise ValueError("unknown intent kinds %s (known: %s)" % (sorted(unknown), ", ".join(KINDS)))
    return [ex for ex in examples if kind(ex["output"]) in kinds]


def syntax_ok(raw):
    """Layer 1 of t2m's scoring (eval.CheckSyntax) on a raw output, for the scripts' quick check (t2m baseline
    gives the real numbers)."""
    try:
        return _syntax_ok_parsed(json.loads(extract_json(raw)))
    except ValueError:
        return False


def exact_match(raw, gold):
    """The extracted output parses to the gold output (key order ignored)."""
    try:
        return json.loads(extract_json(raw)) == gold
    except ValueError:
        return False


def shell_completion(ex):
    """The completion of a `t2m data` example written as a mongosh query instead of t2m's JSON:
    db.<collection>.find(<filter>[, <projection>])[.sort(<sort>)][.limit(<n>)] or
    db.<collection>.aggregate(<pipeline>), the JSON inside as data.Completion writes it, then <|im_end|>.
    A base trained on these knows the queries and reads the schema but not the output format the scorer
    wants (a JSON object with "type"), as a pretrained model does not: its zero-shot outputs fail syntax
    until a fine-tune teaches the format. A negative keeps its {"error": ...} object."""
    out = ex["output"]
    dump = lambda v: json.dumps(v, ensure_ascii=False)  # noqa: E731
    coll = ex["schema"]["collection"]
    if out.get("type") == "aggregate":
        text = "db.%s.aggregate(%s)" % (coll, dump(out["pipeline"]))
    elif out.get("type") == "find":
        args = [dump(out.get("filter", {}))] + ([dump(out["projection"])] if "projection" in out else [])
        text = "db.%s.find(%s)" % (coll, ", ".join(args))
        if "sort" in out:
            text += ".sort(%s)" % dump(out["sort"])
        if "limit" in out:
            text += ".limit(%s)" % dump(out["limit"])
    else:
        text = dump(out)
    return text + IM_END


def bare_completion(ex):
    """The completion of a `t2m data` example as t2m's JSON without its wrapper key "type": the gold output
    object minus its "type" entry, the other keys in their order and written as data.Completion writes them
    (json.dumps, ensure_ascii=False), then <|im_end|>: {"filter": {...}[, "projection": {...}]} for a find,
    {"pipeline": [...]} for an aggregate. Putting "type" back as the first key gives data.Completion's text
    exactly (every gold output of t2m data and of the published set has "type" first). A base trained on these
    knows the queries and the JSON body but not the wrapper the scorer's syntax layer requires (eval.CheckSyntax:
    "Missing 'type' field"), so its zero-shot outputs fail syntax and a fine-tune has one key to learn, as the
    original's pretrained model's zero-shot failures were mostly format. A negative ({"error": ...}, no "type")
    is unchanged."""
    out = ex["output"]
    return json.dumps({k: v for k, v in out.items() if k != "type"}, ensure_ascii=False) + IM_END


def mixed_completion(ex, json_frac=0.0):
    """The completion of a `t2m data` example with finds (and negatives) in t2m's JSON (data.Completion) and
    aggregations as mongosh queries (shell_completion: db.<collection>.aggregate([...])), except a json_frac
    share of the aggregations, which keep t2m's JSON (chosen by a hash of the collection and intent, so an
    example is always written the same way). A base trained on these knows the queries of both types and the
    JSON format; with json_frac 0 it writes every aggregation in the wrong format, and with a small json_frac it
    also knows the JSON aggregations but prefers mongosh for them, as a pretrained model answers some requests
    in mongosh though it can write the JSON: its zero-shot outputs fail syntax on those, and a fine-tune has to
    move the aggregations to the format it already writes for finds."""
    if ex["output"].get("type") == "aggregate":
        key = (ex["schema"]["collection"] + "\x00" + ex["intent"]).encode("utf-8")
        if zlib.crc32(key) / 2**32 >= json_frac:
            return shell_completion(ex)
    return completion(ex)


# make_small_base.py --output-format: how the base's completions are written.
RENDERERS = {"json": completion, "shell": shell_completion, "bare": bare_completion, "mixed": mixed_completion}


def own_format_match(raw, ex, output_format, render=None):
    """make_small_base.py's exact match in the base's own format: for "json", the extracted output parses to
    the gold output (exact_match); for "shell" and "bare", the stripped output is the rendered gold completion
    without its <|im_end|>, text for text."""
    if output_format == "json":
        return exact_match(raw, ex["output"])
    want = (render or RENDERERS[output_format])(ex)
    return raw.strip() == want[:-len(IM_END)]


def base_config(hidden=384, layers=6, heads=6, kv_heads=2, intermediate=1024, vocab=151936, rope_theta=10000.0,
                max_positions=1024, tied=True):
    """config.json of the small base, in the classic keys of Qwen2.5's published checkpoints (rope_theta,
    torch_dtype), which t2m's model.LoadConfig reads and transformers reads too."""
    return {"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
            "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": hidden, "initializer_range": 0.02,
            "intermediate_size": intermediate, "max_position_embeddings": max_positions, "max_window_layers": layers,
            "model_type": "qwen2", "num_attention_heads": heads, "num_hidden_layers": layers,
            "num_key_value_heads": kv_heads, "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": rope_theta,
            "sliding_window": None, "tie_word_embeddings": tied, "torch_dtype": "bfloat16",
            "transformers_version": "4.43.1", "use_cache": True, "use_sliding_window": False, "vocab_size": vocab}


# Words that new field names are made of (rename_fields): none of them is a field name of t2m data's
# schemas, so a renamed field cannot be told from its name alone, only from the schema in the prompt.
NAME_WORDS = ("amber", "basin", "cedar", "delta", "ember", "fable", "grove", "harbor", "iris", "jade", "kestrel",
              "lumen", "maple", "nectar", "opal", "pebble", "quartz", "raven", "sierra", "tundra", "umber", "vale",
              "willow", "yarrow", "zephyr", "anchor", "beacon", "canyon", "dune", "echo", "flint", "glacier", "heron",
              "ivory", "juniper", "kelp", "lagoon", "meadow", "nimbus", "orchid", "prairie", "quill", "ridge", "saffron",
              "thicket", "upland", "violet", "wharf", "yonder", "zinc", "alpha", "bravo", "cobalt", "drift", "fern",
              "garnet", "hollow", "inlet", "jasper", "knoll", "lattice", "mosaic", "north", "onyx", "pylon", "rune",
              "slate", "tidal", "vector", "woven", "metric", "level", "mark", "tally", "code", "tag", "flag", "stamp")


def _word_re(name):
    import re
    return re.compile(r"(?<![A-Za-z0-9_])" + re.escape(name) + r"(?![A-Za-z0-9_])")


def rename_fields(ex, rng, collection=False, words=NAME_WORDS):
    """A copy of a `t2m data` example whose schema fields carry fresh names (one or two of NAME_WORDS joined by
    "_"), renamed consistently in the schema, the intent (the name, and the name with spaces for "_", as whole
    words) and the gold output (keys and values equal to the name, "$name" references, and the
    "<accumulator>_<name>" keys of $group stages), so that the base model must read field names from the
    schema in the prompt instead of recalling them. With collection, the collection gets a fresh name too (in
    the schema and in the intent, with "_" or spaces) and the fields are listed in a shuffled order, so that
    nothing in the prompt but the schema itself says which fields exist. rng: a random.Random. words: the
    words new names are made of (NAME_WORDS, or vocab_words of the tokenizer)."""
    fields = ex["schema"]["fields"]
    taken = {f["name"] for f in fields}
    mapping = {}
    for f in fields:
        while True:
            new = "_".join(rng.choice(words) for _ in range(rng.choice((1, 2, 2))))
            if new not in taken:
                break
        taken.add(new)
        mapping[f["name"]] = new
    # Longest names first, so "order_count" is replaced before a field named "count" could match inside it
    # (whole-word matching already keeps "count" out of "order_count"; the order keeps intents predictable).
    order = sorted(mapping, key=len, reverse=True)

    def text(s):
        for old in order:
            s = _word_re(old).sub(mapping[old], s)
            if "_" in old:
                s = _word_re(old.replace("_", " ")).sub(mapping[old].replace("_", " "), s)
        return s

    def key(k):
        if k in mapping:
            return mapping[k]
        for old in order:
            if k.endswith("_" + old) and not k.startswith("$"):
                return k[: -len(old)] + mapping[old]
        return k

    def value(v):
        if isinstance(v, dict):
            return {key(k): value(x) for k, x in v.items()}
        if isinstance(v, list):
            return [value(x) for x in v]
        if isinstance(v, str):
            if v in mapping:
                return mapping[v]
            if v.startswith("$") and v[1:] in mapping:
                return "$" + mapping[v[1:]]
        return v

    out = json.loads(json.dumps(ex))
    for f in out["schema"]["fields"]:
        f["name"] = mapping[f["name"]]
    out["intent"] = text(ex["intent"])
    if collection:
        old = ex["schema"]["collection"]
        while True:
            new = "_".join(rng.choice(words) for _ in range(2))
            if new not in taken:
                break
        out["schema"]["collection"] = new
        for o, n in ((old, new), (old.replace("_", " "), new.replace("_", " "))):
            out["intent"] = _word_re(o).sub(n, out["intent"])
        rng.shuffle(out["schema"]["fields"])
    out["output"] = value(ex["output"])
    return out


# Why the base needs more than NAME_WORDS (measured on the published held_out split): Qwen's byte-level BPE
# gives a field name two different tokens: in the prompt it follows a space (" wing", "Ġwing", id 20013), in
# the JSON output a quote ("wing", id 23593). A model trained from scratch learns "write wing where the prompt
# says Ġwing" only for words it was trained on; the output token of a word it never wrote keeps its random
# initial embedding (only ever pushed down), so no base made from t2m data (and no fine-tune on the published
# train split) can write "visitor", "wing", "medium", "humidity", "vehicle", "fuel", ...: 20 of the 34 first
# words of the held-out collections' field names occur in no training output of either. A pretrained model
# knows every such pair. The two helpers below give the base that knowledge for the tokenizer's whole
# vocabulary of lowercase words (not picked from any split): vocab_words lists them, spelling_pairs makes
# sequences that ask for each word in its quoted form given its spaced form, and rename_fields can draw new
# field names from the same list.

def vocab_words(vocab, min_len=2, max_len=12):
    """The lowercase ASCII words w (min_len to max_len letters) whose space-prefixed form "Ġw" is a single
    token of a byte-level BPE vocabulary (a dict token -> id, as tokenizers' get_vocab() returns), in id
    order (roughly by frequency). For Qwen2.5's tokenizer: 24,390 words."""
    import re
    pat = re.compile(r"[a-z]{%d,%d}" % (min_len, max_len))
    return [t[1:] for t, _ in sorted(vocab.items(), key=lambda x: x[1]) if t.startswith("\u0120") and pat.fullmatch(t[1:])]


def field_words(paths):
    """The words field names are made of ("_"-separated parts, lowercase ASCII letters only) over the schemas of
    the split files at paths, sorted: with every split of `t2m data` folders (held_out.jsonl included), the
    vocabulary of the data generator's collections, the held-out ones' too. Only the words go into spelling
    sequences, never those collections' schemas or queries."""
    import re
    words = set()
    for p in paths:
        for ex in read_jsonl(p):
            for f in ex["schema"]["fields"]:
                words.update(w for w in f["name"].split("_") if re.fullmatch(r"[a-z]+", w))
    return sorted(words)


def spelling_pairs(words, rng, reps, per_seq=40):
    """(prompt, completion) texts that teach a from-scratch model each word's quoted form from its spaced form:
    the prompt "<|im_start|>user\\nSpell: name name ...<|im_end|>\\n<|im_start|>assistant\\n", the completion
    the names as a JSON list, then <|im_end|> (the loss is on the completion, as for the examples). A name is
    one word of words, or (one in three) two joined by "_", as field names are. Every word occurs in reps
    passes over a fresh shuffle of words; per_seq names a sequence. rng: a random.Random."""
    stream = []
    for _ in range(reps):
        ws = list(words)
        rng.shuffle(ws)
        stream += ws
    names, i = [], 0
    while i < len(stream):
        k = 2 if rng.random() < 1 / 3 and i + 1 < len(stream) else 1
        names.append("_".join(stream[i:i + k]))
        i += k
    out = []
    for j in range(0, len(names), per_seq):
        chunk = names[j:j + per_seq]
        out.append((IM_START + "user\nSpell: " + " ".join(chunk) + IM_END + "\n" + IM_START + "assistant\n",
                    json.dumps(chunk) + IM_END))
    return out
