"""Writes verdicts.jsonl: reference verdicts for eval's TestReferenceVerdicts.

An independent Python statement of the four layers as eval/doc.go describes them
(the original text_to_mongo harness's semantics), run on mutated gold outputs of
the shared data set. Python's own json.loads does the parsing, so the fixture
pins down what Go's ParsePython must reproduce: NaN/Infinity, 1e999, duplicate
keys, lone surrogates, strict control characters, trailing data, and so on.

Usage (from the repository root, with ../shared beside it):
    python3 eval/testdata/reference/make_verdicts.py > eval/testdata/reference/verdicts.jsonl
"""
import json
import random

DATA = "../shared/data/text-to-mongo"
UNSAFE = {"$where", "$function", "$accumulator", "$merge", "$out", "$currentOp",
          "$collStats", "$indexStats", "$planCacheStats"}
EJSON = {"$date", "$oid", "$numberLong", "$numberInt", "$numberDouble", "$numberDecimal",
         "$binary", "$timestamp", "$regex", "$undefined", "$minKey", "$maxKey",
         "$dbPointer", "$symbol", "$code"}
ALIAS = {"$group", "$bucket", "$bucketAuto"}


def extract(text):
    """First JSON object by brace depth, strings and escapes respected."""
    start = text.find("{")
    if start < 0:
        return text.strip()
    depth, in_str, esc = 0, False, False
    for i in range(start, len(text)):
        c = text[i]
        if esc:
            esc = False
        elif c == "\\":
            esc = in_str
        elif c == '"':
            in_str = not in_str
        elif in_str:
            pass
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
    return text[start:]


def syntax_ok(q):
    if not isinstance(q, dict) or "type" not in q or q["type"] not in ("aggregate", "find"):
        return False
    if q["type"] == "find":
        return "filter" in q and isinstance(q["filter"], dict)
    if "pipeline" not in q or not isinstance(q["pipeline"], list):
        return False
    return all(isinstance(s, dict) and sum(k.startswith("$") for k in s) == 1 for s in q["pipeline"])


def operators(v, out):
    if isinstance(v, dict):
        for k, x in v.items():
            if k.startswith("$") and k not in EJSON:
                out.add(k)
            operators(x, out)
    elif isinstance(v, list):
        for x in v:
            operators(x, out)
    return out


def refs(v, alias, out):
    if isinstance(v, str):
        if v.startswith("$") and not v.startswith("$$"):
            out.add(v[1:].split(".")[0])
    elif isinstance(v, dict):
        for k, x in v.items():
            if k.startswith("$"):
                refs(x, k in ALIAS, out)
            elif alias:
                refs(x, False, out)
            else:
                out.add(k.split(".")[0])
                refs(x, False, out)
    elif isinstance(v, list):
        for x in v:
            refs(x, alias, out)
    return out


def fields_ok(q, names):
    body = q["pipeline"] if "pipeline" in q else q["filter"] if "filter" in q else q
    r = refs(body, False, set())
    if "projection" in q:
        refs(q["projection"], False, r)
    r -= {"_id", "type"}
    return not (r - names)


def verdict(ex, raw):
    pred = extract(raw)
    try:
        q = json.loads(pred)
    except json.JSONDecodeError:
        q = None
        syn = False
    else:
        syn = syntax_ok(q)
    ops = flds = False
    if syn:
        allowed = set(ex["allowed_ops"]["stage_operators"] + ex["allowed_ops"]["expression_operators"])
        used = operators(q, set())
        ops = not (used - allowed) and not (used & UNSAFE)
        flds = fields_ok(q, {f["name"] for f in ex["schema"]["fields"]})
    return pred, syn, ops, flds


KEYS = ["$match", "$group", "$bucket", "$bucketAuto", "$project", "$where", "$date", "$oid",
        "$sum", "_id", "type", "a.b", "x", "$facet", "$regex", "filter", "pipeline", "projection",
        "$", "$$x"]
STRS = ["$$ROOT", "$x", "$a.b", "$", "$.q", "$$NOW", "$_id", "plain", "{", "}", '\\"', "$date"]


def rnd(rng, d=0):
    r = rng.random()
    if d > 3 or r < 0.3:
        return rng.choice(STRS + [1, 1.5, None, True, float("nan")])
    if r < 0.65:
        return {rng.choice(KEYS): rnd(rng, d + 1) for _ in range(rng.randint(0, 3))}
    return [rnd(rng, d + 1) for _ in range(rng.randint(0, 3))]


def mutate(rng, t):
    k = rng.choice([0, 1, 1, 2, 2, 3, 4, 5, 5, 6, 6, 6, 6, 7, 8, 8, 8, 9, 9, 9, 10, 11, 12])
    if k == 1:
        return "Sure! ```json\n" + t + "\n``` hope {this} helps"
    if k == 2:
        i = rng.randrange(len(t) + 1)
        ins = rng.choice(list('{}[]":,\\$. ') + ["NaN", "Infinity", "-Infinity", "1e999", "\\u0041",
                                                 "\\ud800", '"$match": 1,', ' "$where": 1, ', "\n"])
        return t[:i] + ins + t[i:]
    if k == 3:
        return t[:rng.randrange(len(t) + 1)]
    if k == 4:
        i = rng.randrange(max(1, len(t)))
        return t[:i] + t[i + 1:]
    if k == 5:
        return t.replace('"$match"', '"$match": {}, "$match"', 1)
    if k == 6:
        try:
            o = json.loads(t)
        except json.JSONDecodeError:
            return t
        if isinstance(o, dict):
            o["projection" if rng.random() < 0.5 else rng.choice(KEYS)] = rnd(rng)
        return json.dumps(o)
    if k == 7:
        return json.dumps(rnd(rng))
    if k == 8:
        return json.dumps({"type": rng.choice(["find", "aggregate"]),
                           rng.choice(["filter", "pipeline"]): rnd(rng)})
    if k == 9:
        return json.dumps({"type": "aggregate", "pipeline": [
            {"$group": {"_id": "$x", "n": {"$sum": rnd(rng)}, "m.k": [rnd(rng)]}}, rnd(rng)]})
    if k == 10:
        return t.replace('"', "'", 1)
    if k == 11:
        return "  \x1c\x85" + json.dumps(rnd(rng)) + "\u3000 "
    if k == 12:
        return t[::-1]
    return t


def main():
    rng = random.Random(20260301)
    rows = []
    for split in ["train", "eval", "held_out"]:
        with open(f"{DATA}/{split}.jsonl") as f:
            for i, line in enumerate(f):
                ex = json.loads(line)
                if rng.random() > 0.25:
                    continue
                t = json.dumps(ex["output"])
                for _ in range(1 if rng.random() < 0.7 else 2):
                    t = mutate(rng, t)
                pred, syn, ops, flds = verdict(ex, t)
                rows.append({"split": split, "index": i, "raw": t, "prediction": pred,
                             "syntax": syn, "operators": ops, "fields": flds})
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
