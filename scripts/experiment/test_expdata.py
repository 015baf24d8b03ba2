#!/usr/bin/env python3
"""Tests of the experiment's pure-Python parts against t2m itself (no torch needed). From the repo root,
after `make build`:

  python3 scripts/experiment/test_expdata.py

- expdata.prompt/completion are byte for byte what `t2m prompt` prints, on generated data (every intent
  kind, negatives included) and on the published splits;
- expdata.kind names an intent kind for every example of several `t2m data` seeds, every kind occurs, and
  the base's default kinds are a proper subset;
- extract_json/syntax_ok follow t2m's extraction and syntax layer on small cases;
- expdata.bare_completion (--output-format bare) is the JSON completion minus "type" on every published example,
  "type" put back gives it exactly, and t2m score fails every bare output at the syntax layer;
- expdata.base_config is read by t2m (`t2m forward` on a tiny tied checkpoint in make_small_base.py's layout);
- table.py's --by-kind and --seed-means, same_outputs.py, and run_table.sh's lr and qbase modes with stand-ins
  for t2m, the torch scripts and nf4base (which runs they make, with which flags, and their tables).
`make test` runs it."""
import collections
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import expdata  # noqa: E402

T2M = os.environ.get("T2M", os.path.join(ROOT, "bin", "t2m"))
PUBLISHED = os.path.join(ROOT, "..", "shared", "data", "text-to-mongo")


def t2m(*args):
    return subprocess.run([T2M, *args], check=True, capture_output=True).stdout


def t2m_prompt(split, index):
    """(prompt, completion) as `t2m prompt` prints them: a header line, the prompt, "=== completion ===\\n",
    the completion, "\\n"."""
    out = t2m("prompt", "--split", split, "--index", str(index)).decode("utf-8")
    header, rest = out.split("\n", 1)
    assert header.startswith("=== example %d " % index), header
    prompt, completion = rest.split("=== completion ===\n", 1)
    assert completion.endswith("\n")
    return prompt, completion[:-1]


class Data:
    tmp = None

    @classmethod
    def seed(cls, s, style="t2m"):
        if cls.tmp is None:
            cls.tmp = tempfile.mkdtemp(prefix="t2m-expdata-")
        d = os.path.join(cls.tmp, "%s-%s" % (style, s))
        if not os.path.isdir(d):
            t2m("data", "--style", style, "--seed", str(s), "--out", d)
        return d


class TestPrompt(unittest.TestCase):
    def check_split(self, path, indexes):
        exs = expdata.read_jsonl(path)
        for i in indexes:
            want_p, want_c = t2m_prompt(path, i)
            self.assertEqual(expdata.prompt(exs[i]).encode("utf-8"), want_p.encode("utf-8"), "%s:%d prompt" % (path, i))
            self.assertEqual(expdata.completion(exs[i]).encode("utf-8"), want_c.encode("utf-8"), "%s:%d completion" % (path, i))

    def test_generated_every_kind(self):
        path = os.path.join(Data.seed(7), "train.jsonl")
        exs = expdata.read_jsonl(path)
        first = {}
        for i, ex in enumerate(exs):
            first.setdefault(expdata.kind(ex["output"]), i)
        self.assertEqual(set(first), set(expdata.KINDS))
        self.check_split(path, sorted(first.values()) + [len(exs) - 1])

    def test_published(self):
        rng = random.Random(1)
        for split in ("train", "eval", "held_out"):
            path = os.path.join(PUBLISHED, split + ".jsonl")
            n = len(expdata.read_jsonl(path))
            self.check_split(path, sorted(rng.sample(range(n), 8)))


class TestKinds(unittest.TestCase):
    def test_every_example_has_a_kind(self):
        for s in (1, 2, 3):
            seen = set()
            for split in ("train", "eval", "held_out"):
                for ex in expdata.read_jsonl(os.path.join(Data.seed(s), split + ".jsonl")):
                    k = expdata.kind(ex["output"])
                    self.assertEqual(k == "negative", ex["is_negative"], ex)
                    seen.add(k)
            self.assertEqual(seen, set(expdata.KINDS), "seed %d" % s)

    def test_published_style_kinds(self):
        """Every example of `t2m data --style published` and of the published set has a kind, the kinds are
        the published generator's 12, and its time ranges (which project the measure and the date) and
        existence filters ({"$exists": true, "$ne": null}) are told apart from projections and the rest."""
        want = {"filter_eq", "enum_in", "exists", "projection", "time_range", "count", "top_n", "group_agg",
                "filtered_group", "multi_group", "date_bucket", "negative"}
        for d in (Data.seed(101, "published"), PUBLISHED):
            seen = collections.Counter()
            for split in ("train", "eval", "held_out"):
                for ex in expdata.read_jsonl(os.path.join(d, split + ".jsonl")):
                    k = expdata.kind(ex["output"])
                    self.assertEqual(k == "negative", ex["is_negative"], ex)
                    seen[k] += 1
            self.assertEqual(set(seen), want, d)
        date = {"$date": "2024-01-01T00:00:00Z"}
        cases = [({"type": "find", "filter": {"t": {"$gte": date, "$lte": date}}, "projection": {"m": 1, "t": 1}}, "time_range"),
                 ({"type": "find", "filter": {"t": {"$gte": date, "$lt": date}}}, "time_range"),
                 ({"type": "find", "filter": {"c": "v"}, "projection": {"m": 1}}, "projection"),
                 ({"type": "find", "filter": {"t": {"$gte": 5}}, "projection": {"m": 1}}, "projection"),
                 ({"type": "find", "filter": {"a": {"$exists": True, "$ne": None}}}, "exists"),
                 ({"type": "find", "filter": {"a": {"$exists": True}}}, "exists")]
        for out, k in cases:
            self.assertEqual(expdata.kind(out), k, out)
        with self.assertRaises(ValueError):
            expdata.kind({"type": "find", "filter": {"a": {"$exists": True, "$ne": 0}}})

    def test_select(self):
        exs = expdata.read_jsonl(os.path.join(Data.seed(1), "train.jsonl"))
        base = expdata.select(exs, expdata.BASE_KINDS)
        self.assertTrue(0.4 * len(exs) < len(base) < 0.9 * len(exs), (len(base), len(exs)))
        self.assertLess(set(expdata.BASE_KINDS), set(expdata.KINDS))
        for ex in base:
            out = ex["output"]
            self.assertNotIn("error", out)
            self.assertNotIn("projection", out)
            if out["type"] == "aggregate":
                self.assertFalse({"$count", "$limit", "$match", "$bucket"} & {k for s in out["pipeline"] for k in s})
        with self.assertRaises(ValueError):
            expdata.select(exs, ["filter_eq", "nope"])

    def test_shapes_no_kind_makes(self):
        for out in ({"type": "find", "filter": {"a": {"$ne": 1}}}, {"type": "aggregate", "pipeline": [{"$unwind": "$a"}]},
                    {"type": "find", "filter": {"a": 1, "b": 2, "c": 3}}):
            with self.assertRaises(ValueError):
                expdata.kind(out)


class TestRename(unittest.TestCase):
    def test_rename_fields(self):
        rng = random.Random(7)
        exs = expdata.select(expdata.read_jsonl(os.path.join(Data.seed(1), "train.jsonl")), expdata.BASE_KINDS)
        before = json.dumps(exs)
        self.assertGreater(len(exs), 100)
        for ex in exs:
            r = expdata.rename_fields(ex, rng)
            old = {f["name"] for f in ex["schema"]["fields"]}
            new = [f["name"] for f in r["schema"]["fields"]]
            self.assertEqual(len(set(new)), len(new), "renamed fields collide")
            self.assertFalse(old & set(new), "a field kept its name")
            self.assertEqual(expdata.kind(r["output"]), expdata.kind(ex["output"]))
            text = json.dumps(r["output"])
            for name in old:  # no reference to an old name is left in the gold output
                self.assertNotIn('"%s"' % name, text)
                self.assertNotIn('"$%s"' % name, text)
            self.assertEqual(ex["intent"] == r["intent"], not any(
                expdata._word_re(n).search(ex["intent"]) or expdata._word_re(n.replace("_", " ")).search(ex["intent"]) for n in old))
        self.assertEqual(json.dumps(exs), before, "rename_fields changed the original examples")

    def test_rename_collections(self):
        rng = random.Random(8)
        exs = expdata.select(expdata.read_jsonl(os.path.join(Data.seed(1), "train.jsonl")), expdata.BASE_KINDS)
        shuffled = 0
        for ex in exs[:300]:
            r = expdata.rename_fields(ex, rng, collection=True)
            old, new = ex["schema"]["collection"], r["schema"]["collection"]
            self.assertNotEqual(old, new)
            self.assertIsNone(expdata._word_re(old).search(r["intent"]), r["intent"])
            self.assertIsNone(expdata._word_re(old.replace("_", " ")).search(r["intent"]), r["intent"])
            self.assertEqual(expdata.kind(r["output"]), expdata.kind(ex["output"]))
            self.assertEqual(sorted(f["description"] for f in r["schema"]["fields"]),
                             sorted(f["description"] for f in ex["schema"]["fields"]))
            shuffled += [f["description"] for f in r["schema"]["fields"]] != [f["description"] for f in ex["schema"]["fields"]]
        self.assertGreater(shuffled, 200, "the field order is not shuffled")


class TestVocabWords(unittest.TestCase):
    def test_vocab_words(self):
        vocab = {"\u0120wing": 9, "wing": 3, "\u0120the": 2, "\u0120A": 4, "\u0120x": 5, "\u0120two_words": 6, "visitor": 7,
                 "\u0120caf\u00e9": 8, "\u0120abcdefghijklm": 10, "\u0120medium": 1}
        self.assertEqual(expdata.vocab_words(vocab), ["medium", "the", "wing"])

    def test_rename_with_vocab_words(self):
        rng = random.Random(9)
        words = ["w%03d" % i for i in range(500)]
        exs = expdata.select(expdata.read_jsonl(os.path.join(Data.seed(1), "train.jsonl")), expdata.BASE_KINDS)
        for ex in exs[:300]:
            r = expdata.rename_fields(ex, rng, collection=True, words=words)
            old = {f["name"] for f in ex["schema"]["fields"]}
            new = [f["name"] for f in r["schema"]["fields"]]
            self.assertEqual(len(set(new)), len(new), "renamed fields collide")
            self.assertTrue(all(p in words for n in new for p in n.split("_")), new)
            self.assertTrue(all(p in words for p in r["schema"]["collection"].split("_")))
            self.assertEqual(expdata.kind(r["output"]), expdata.kind(ex["output"]))
            text = json.dumps(r["output"])
            for name in old:
                self.assertNotIn('"%s"' % name, text)
                self.assertNotIn('"$%s"' % name, text)

    def test_field_words(self):
        d = Data.seed(101)
        words = expdata.field_words([os.path.join(d, f) for f in ("train.jsonl", "held_out.jsonl")])
        self.assertEqual(words, sorted(set(words)))
        self.assertTrue(all(w.isalpha() and w.islower() for w in words), words)
        train_only = set(expdata.field_words([os.path.join(d, "train.jsonl")]))
        held = set(expdata.field_words([os.path.join(d, "held_out.jsonl")]))
        self.assertTrue(held - train_only, "held_out adds no words: the option would teach nothing new")
        self.assertTrue(set(words) >= held | train_only)

    def test_spelling_pairs(self):
        words = ["w%03d" % i for i in range(997)]
        pairs = expdata.spelling_pairs(words, random.Random(3), reps=3, per_seq=40)
        seen, joined = [], 0
        for prompt, completion in pairs:
            head = expdata.IM_START + "user\nSpell: "
            tail = expdata.IM_END + "\n" + expdata.IM_START + "assistant\n"
            self.assertTrue(prompt.startswith(head) and prompt.endswith(tail), prompt)
            self.assertTrue(completion.endswith(expdata.IM_END))
            names = json.loads(completion[:-len(expdata.IM_END)])
            self.assertEqual(prompt[len(head):-len(tail)].split(" "), names)
            self.assertLessEqual(len(names), 40)
            joined += sum("_" in n for n in names)
            for n in names:
                seen += n.split("_")
        self.assertEqual(sorted(seen), sorted(words * 3), "every word reps times")
        self.assertGreater(joined, 200, "some names are two words")
        self.assertEqual(pairs, expdata.spelling_pairs(words, random.Random(3), reps=3, per_seq=40), "deterministic")


class TestExtract(unittest.TestCase):

    def test_extract(self):
        for text, want in [
            ('Here: {"type": "find", "filter": {}} done', '{"type": "find", "filter": {}}'),
            ('{"a": "}"} tail', '{"a": "}"}'),
            ('{"a": "\\"}"} x', '{"a": "\\"}"}'),
            ('{"a": {"b": 1}', '{"a": {"b": 1}'),
            ('  no json  ', 'no json'),
        ]:
            self.assertEqual(expdata.extract_json(text), want, text)

    def test_syntax(self):
        ok = ['{"type": "find", "filter": {"a": 1}}', '```json\n{"type": "aggregate", "pipeline": [{"$group": {"_id": "$a"}}]}\n```',
              '{"type": "aggregate", "pipeline": []}']
        bad = ['{"type": "find"}', '{"type": "find", "filter": []}', '{"error": "x"}', '{"type": "aggregate", "pipeline": [{"a": 1}]}',
               '{"type": "aggregate", "pipeline": [{"$a": 1, "$b": 2}]}', '{"type": "update", "filter": {}}', 'nothing', '{"type": "find", "filter": {']
        for s in ok:
            self.assertTrue(expdata.syntax_ok(s), s)
        for s in bad:
            self.assertFalse(expdata.syntax_ok(s), s)
        self.assertTrue(expdata.exact_match('x {"filter": {"a": 1}, "type": "find"}', {"type": "find", "filter": {"a": 1}}))


def write_safetensors(path, tensors):
    """A stdlib safetensors writer for the test: {name: (shape, list of floats)} as BF16."""
    header, blobs, off = {}, [], 0
    for name, (shape, vals) in sorted(tensors.items()):
        raw = b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:] for v in vals)
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))



class TestTableByKind(unittest.TestCase):
    def test_by_kind(self):
        """table.py --by-kind counts each run's syntax and overall passes per intent kind of the gold output."""
        rows = [({"type": "find", "filter": {"a": "x"}}, False, True, True),  # filter_eq
                ({"type": "find", "filter": {"a": "x"}}, False, True, False),
                ({"type": "find", "filter": {}, "projection": {"a": 1}}, False, False, False),  # projection
                ({"error": "no"}, True, True, False)]  # negative
        with tempfile.TemporaryDirectory() as d:
            for run, flip in (("r1", False), ("r2", True)):
                os.makedirs(os.path.join(d, run))
                for split in ("eval", "held_out"):
                    with open(os.path.join(d, run, split + "_predictions.jsonl"), "w") as f:
                        for exp, neg, syn, ok in rows:
                            f.write(json.dumps({"expected": exp, "is_negative": neg, "syntax": {"passed": syn != flip},
                                                "passed_all": ok and not flip}) + "\n")
            out = subprocess.run([sys.executable, os.path.join(HERE, "table.py"), d, "--runs", "r1,r2", "--by-kind"],
                                 check=True, capture_output=True, text=True).stdout
        self.assertIn("| filter_eq | yes | 2 | 2 / 1 | 0 / 0 |", out)
        self.assertIn("| projection | no | 1 | 0 / 0 | 1 / 0 |", out)
        self.assertIn("| negative | no | 1 | 1 / 0 | 0 / 0 |", out)


class TestTableSeedMeans(unittest.TestCase):
    def test_seed_means(self):
        """table.py --seed-means groups runs named NAME_s<seed> by NAME: overall mean and range per split, and
        t2m minus HF PEFT at the same learning rate (NF4 and bf16 groups against the HF group)."""
        overall = {"small_t2m_r8_lr2e-3_s1": (0.70, 0.50), "small_t2m_r8_lr2e-3_s2": (0.72, 0.60),
                   "small_t2m_r8_lr2e-3_bf16_s1": (0.71, 0.61), "small_hf_peft_r8_lr2e-3_s1": (0.74, 0.62),
                   "small_hf_peft_r8_lr2e-3_s2": (0.74, 0.64), "small_baseline": (0.2, 0.1)}
        with tempfile.TemporaryDirectory() as d:
            for run, rates in overall.items():
                os.makedirs(os.path.join(d, run))
                for split, r in zip(("eval", "held_out"), rates):
                    with open(os.path.join(d, run, split + "_report.json"), "w") as f:
                        json.dump({"total": 10, "syntax_pass_rate": 1, "operator_pass_rate": 1, "field_pass_rate": 1,
                                   "overall_pass_rate": r, "exact_match_rate": 0}, f)
            out = subprocess.run([sys.executable, os.path.join(HERE, "table.py"), d, "--runs", ",".join(overall),
                                  "--seed-means"], check=True, capture_output=True, text=True).stdout
        self.assertIn("| small_t2m_r8_lr2e-3 | 2 | 71.0% (70.0–72.0) | 55.0% (50.0–60.0) |", out)
        self.assertIn("| small_hf_peft_r8_lr2e-3 | 2 | 74.0% (74.0–74.0) | 63.0% (62.0–64.0) |", out)
        self.assertIn("small_t2m_r8_lr2e-3 minus HF PEFT at the same lr: -8.0 points (eval -3.0)", out)
        self.assertIn("small_t2m_r8_lr2e-3_bf16 minus HF PEFT at the same lr: -2.0 points (eval -3.0)", out)
        self.assertNotIn("| small_baseline | 1 |", out)  # no seed suffix: not grouped


class TestSameOutputs(unittest.TestCase):
    def test_counts(self):
        """same_outputs.py counts the raw outputs a t2m run (raw_output) shares with an HF generation
        (prediction), per split, ignoring surrounding whitespace, and refuses files of different lengths."""
        with tempfile.TemporaryDirectory() as d:
            t, h = os.path.join(d, "t2m"), os.path.join(d, "hf")
            os.makedirs(t), os.makedirs(h)
            for split, a, b in (("eval", ["x", "y ", "z"], ["x", " y", "w"]), ("held_out", ["p"], ["q"])):
                with open(os.path.join(t, split + "_predictions.jsonl"), "w") as f:
                    f.writelines(json.dumps({"raw_output": v}) + "\n" for v in a)
                with open(os.path.join(h, split + "_predictions.jsonl"), "w") as f:
                    f.writelines(json.dumps({"prediction": v}) + "\n" for v in b)
            cmd = [sys.executable, os.path.join(HERE, "same_outputs.py"), t, h]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            self.assertIn("eval: 2 of 3 raw outputs identical", out)
            self.assertIn("held_out: 0 of 1 raw outputs identical", out)
            with open(os.path.join(h, "held_out_predictions.jsonl"), "a") as f:
                f.write(json.dumps({"prediction": "r"}) + "\n")
            self.assertNotEqual(subprocess.run(cmd, capture_output=True).returncode, 0)



# Stand-ins for the GPU machine's commands, for TestRunTable: they write what the real ones would, from their
# flags, and log their command lines. The fake python3 runs table.py, same_outputs.py and -c with the real one.
FAKE_PYTHON = r"""#!/bin/bash
echo "python3 $*" >>"$FAKE_LOG"
case "$1" in
  scripts/experiment/make_small_base.py)
    while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done
    mkdir -p "$out" && echo base >"$out/model.safetensors" && echo '{"kinds": ["filter_eq"]}' >"$out/base_info.json" && echo '{}' >"$out/config.json"
    exit 0;;
  scripts/experiment/hf_peft_finetune.py)
    while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done
    mkdir -p "$out/adapter"
    for s in eval held_out; do echo '{"prediction": "x"}' >"$out/${s}_predictions.jsonl"; done
    echo "epoch 3: eval_loss 0.2"; exit 0;;
  -c) exit 0;;
esac
exec "$REAL_PYTHON" "$@"
"""
FAKE_T2M = r"""#!/bin/bash
echo "t2m $*" >>"$FAKE_LOG"
cmd=$1; shift
case "$cmd" in
  data) while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done; mkdir -p "$out";;
  score|baseline|eval|train)
    while [ $# -gt 0 ]; do
      case "$1" in --run-name) name=$2;; --output-dir) od=$2;; --split) split=$(basename "$2" .jsonl);; esac; shift
    done
    mkdir -p "$od/$name"
    for s in ${split:-eval held_out}; do
      echo '{"total": 10, "syntax_pass_rate": 1, "operator_pass_rate": 1, "field_pass_rate": 0.5, "overall_pass_rate": 0.5, "exact_match_rate": 0.1}' >"$od/$name/${s}_report.json"
      echo '{"raw_output": "x", "is_negative": true, "expected": {}, "syntax": {"passed": true}, "passed_all": false}' \
        >"$od/$name/${s}_predictions.jsonl"
    done
    [ "$cmd" = train ] && mkdir -p "$od/$name/adapter" && echo "epoch 3: eval_loss 0.2"
    exit 0;;
  --version) echo "t2m (fake)";;
esac
"""
FAKE_NF4BASE = r"""#!/bin/bash
echo "nf4base $*" >>"$FAKE_LOG"
while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done
mkdir -p "$out" && echo nf4 >"$out/model.safetensors" && echo "nf4base: 42 projections"
"""


class TestRunTable(unittest.TestCase):
    """run_table.sh's lr and qbase modes with stand-ins for t2m, python3 (torch side) and nf4base: which runs
    they make with which flags, and that their seed-mean tables come out. (The GPU runs are in the README.)"""

    def run_mode(self, mode, env):
        d = tempfile.mkdtemp()
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        bindir = os.path.join(d, "bin")
        os.makedirs(bindir)
        for name, text in (("python3", FAKE_PYTHON), ("t2m", FAKE_T2M), ("nf4base", FAKE_NF4BASE)):
            with open(os.path.join(bindir, name), "w") as f:
                f.write(text)
            os.chmod(os.path.join(bindir, name), 0o755)
        log = os.path.join(d, "log")
        e = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"], REAL_PYTHON=sys.executable,
                 FAKE_LOG=log, T2M=os.path.join(bindir, "t2m"), NF4BASE=os.path.join(bindir, "nf4base"),
                 EXP_DIR=os.path.join(d, "exp"), OUT=os.path.join(d, "out"), SEEDS="101", **env)
        # run_table.sh checks that the data and tokenizer exist: give it a .bench of empty files in a copy of
        # the script's folder layout (it runs from the repo root it is given as cwd).
        root = os.path.join(d, "root")
        os.makedirs(os.path.join(root, ".bench", "data"))
        for f in ("train", "eval", "held_out"):
            open(os.path.join(root, ".bench", "data", f + ".jsonl"), "w").close()
        open(os.path.join(root, ".bench", "tokenizer.json"), "w").close()
        for sub in ("scripts", "eval"):  # expdata.py imports the reference scorer from eval/testdata
            os.symlink(os.path.join(ROOT, sub), os.path.join(root, sub))
        r = subprocess.run(["bash", "scripts/experiment/run_table.sh", mode], cwd=root, env=e, capture_output=True,
                           text=True, timeout=120)
        with open(log) as f:
            calls = f.read().splitlines()
        return r, calls, os.path.join(d, "out")

    def test_qbase(self):
        r, calls, out = self.run_mode("qbase", {"LR_SEEDS": "42 7", "HF_LRS": "2e-3"})
        self.assertEqual(r.returncode, 0, r.stdout[-2000:])
        nf4 = [c for c in calls if c.startswith("nf4base ")]
        self.assertEqual(len(nf4), 1, calls)
        hf = [c for c in calls if "hf_peft_finetune.py" in c]
        self.assertEqual(len(hf), 2, calls)
        for c, seed in zip(sorted(hf), ("42", "7")):
            self.assertIn("--base %s" % nf4[0].split("--out ")[1].split()[0], c)  # HF trains the round trip
            self.assertIn("--lr 2e-3", c)
            self.assertIn("--seed ", c)
        self.assertEqual(sorted(c.split("--seed ")[1].split()[0] for c in hf), ["42", "7"])
        self.assertIn("| small_hf_peft_r8_nf4base_lr2e-3 | 2 | 50.0% (50.0–50.0) | 50.0% (50.0–50.0) |", r.stdout)
        self.assertTrue(os.path.exists(os.path.join(out, "runs_qbase.tar.gz")))

    def test_lr(self):
        r, calls, out = self.run_mode("lr", {"LR_SEEDS": "42", "T2M_LRS": "2e-3 2e-3:bf16", "HF_LRS": "2e-3:bf16ops"})
        self.assertEqual(r.returncode, 0, r.stdout[-2000:])
        train = [c for c in calls if c.startswith("t2m train")]
        self.assertEqual(len(train), 2, calls)
        self.assertTrue(any("--quantize none" in c and "lr2e-3_bf16_s42" in c for c in train), train)
        hf = [c for c in calls if "hf_peft_finetune.py" in c]
        self.assertEqual(len(hf), 1, calls)
        self.assertIn("--lora-bf16-ops", hf[0])
        self.assertTrue(any(c.startswith("t2m eval") and "hf_lr2e-3_bf16ops_s42/adapter" in c for c in calls), calls)
        self.assertIn("| small_t2m_r8_lr2e-3_bf16 | 1 |", r.stdout)
        self.assertIn("| small_hf_peft_r8_lr2e-3_bf16ops | 1 |", r.stdout)
        self.assertIn("| negative | no | 1 |", r.stdout)  # --by-kind read the t2m runs' predictions

class TestShellCompletion(unittest.TestCase):
    def test_shell_completion(self):
        """A find, a find with projection, sort and limit, an aggregate and a negative as mongosh text, the
        JSON inside written as t2m's completion writes it."""
        schema = {"collection": "posts", "fields": []}
        cases = [
            ({"type": "find", "filter": {"topic": "café"}}, 'db.posts.find({"topic": "café"})'),
            ({"type": "find", "filter": {}, "projection": {"a": 1}, "sort": {"a": -1}, "limit": 5},
             'db.posts.find({}, {"a": 1}).sort({"a": -1}).limit(5)'),
            ({"type": "aggregate", "pipeline": [{"$group": {"_id": "$a", "n": {"$sum": 1}}}]},
             'db.posts.aggregate([{"$group": {"_id": "$a", "n": {"$sum": 1}}}])'),
            ({"error": "cannot"}, '{"error": "cannot"}'),
        ]
        for out, want in cases:
            ex = {"schema": schema, "output": out}
            self.assertEqual(expdata.shell_completion(ex), want + expdata.IM_END)
        # The filter inside is the same text as in t2m's completion.
        ex = {"schema": schema, "output": cases[0][0]}
        self.assertIn(json.dumps(cases[0][0]["filter"], ensure_ascii=False), expdata.completion(ex))
        # And it fails the scorer's syntax layer, as a zero-shot shell answer should.
        self.assertFalse(expdata.syntax_ok(expdata.shell_completion(ex)[:-len(expdata.IM_END)]))

class TestMixedCompletion(unittest.TestCase):
    """--output-format mixed: finds and negatives in t2m's JSON, aggregations as mongosh."""

    def test_mixed(self):
        exs = expdata.read_jsonl(os.path.join(PUBLISHED, "eval.jsonl"))
        types = collections.Counter()
        for ex in exs:
            typ = ex["output"].get("type", "error")
            types[typ] += 1
            got = expdata.mixed_completion(ex)
            if typ == "aggregate":
                self.assertEqual(got, expdata.shell_completion(ex))
                self.assertTrue(got.startswith("db.%s.aggregate([" % ex["schema"]["collection"]), got)
                self.assertFalse(expdata.syntax_ok(got[:-len(expdata.IM_END)]))
            else:
                self.assertEqual(got, expdata.completion(ex))
            self.assertTrue(expdata.own_format_match(got[:-len(expdata.IM_END)], ex, "mixed"))
        self.assertGreater(types["find"], 0)
        self.assertGreater(types["aggregate"], 0)

    def test_mixed_json_frac(self):
        """With json_frac, about that share of the aggregations keep t2m's JSON, always the same ones, and a
        larger share keeps a superset of them; finds are JSON whatever the share."""
        exs = [ex for s in ("train", "eval") for ex in expdata.read_jsonl(os.path.join(PUBLISHED, s + ".jsonl"))]
        aggs = [ex for ex in exs if ex["output"].get("type") == "aggregate"]
        kept = {}
        for frac in (0.0, 0.25, 0.5, 1.0):
            kept[frac] = {i for i, ex in enumerate(aggs) if expdata.mixed_completion(ex, frac) == expdata.completion(ex)}
            self.assertEqual(kept[frac], {i for i, ex in enumerate(aggs) if expdata.mixed_completion(ex, frac) == expdata.completion(ex)})
            self.assertAlmostEqual(len(kept[frac]) / len(aggs), frac, delta=0.05)
            for ex in exs:
                if ex["output"].get("type") != "aggregate":
                    self.assertEqual(expdata.mixed_completion(ex, frac), expdata.completion(ex))
        self.assertTrue(kept[0.25] <= kept[0.5] <= kept[1.0])
        render = lambda ex: expdata.mixed_completion(ex, 0.5)  # noqa: E731
        for ex in aggs[:20]:
            self.assertTrue(expdata.own_format_match(render(ex)[:-len(expdata.IM_END)], ex, "mixed", render))


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class TestBareCompletion(unittest.TestCase):
    """--output-format bare: the gold JSON without "type", which the scorer's syntax layer requires."""

    @staticmethod
    def retyped(bare, typ):
        """A bare completion with "type" put back as the first key, as text."""
        assert bare.startswith("{")
        return '{"type": %s, %s' % (json.dumps(typ, ensure_ascii=False), bare[1:])

    def published(self, split):
        return expdata.read_jsonl(os.path.join(PUBLISHED, split + ".jsonl"))

    def test_bare_is_the_json_completion_without_type(self):
        """Every published example: the bare completion is the JSON completion's object minus its "type" entry
        (the other keys, their order and formatting unchanged); "type" put back gives the JSON completion
        exactly; negatives are unchanged. Checked against t2m prompt's completion on a sample."""
        rng, shapes = random.Random(2), set()
        for split in ("train", "eval", "held_out"):
            path = os.path.join(PUBLISHED, split + ".jsonl")
            exs = self.published(split)
            for ex in exs:
                out, bare, full = ex["output"], expdata.bare_completion(ex), expdata.completion(ex)
                self.assertTrue(bare.endswith(expdata.IM_END))
                body = json.loads(bare[:-len(expdata.IM_END)], object_pairs_hook=list)
                self.assertEqual(body, [(k, v) for k, v in json.loads(full[:-len(expdata.IM_END)], object_pairs_hook=list)
                                        if k != "type"])
                if "type" in out:
                    self.assertEqual(self.retyped(bare, out["type"]), full)
                    self.assertEqual(json.dumps({"type": out["type"], **json.loads(bare[:-len(expdata.IM_END)])},
                                                ensure_ascii=False) + expdata.IM_END, full)
                else:
                    self.assertEqual(bare, full)
                shapes.add(tuple(out))
            for i in sorted(rng.sample(range(len(exs)), 4)):  # the JSON completion is t2m's, byte for byte
                _, want = t2m_prompt(path, i)
                bare = expdata.bare_completion(exs[i])
                out = exs[i]["output"]
                self.assertEqual((self.retyped(bare, out["type"]) if "type" in out else bare).encode("utf-8"),
                                 want.encode("utf-8"), "%s:%d" % (path, i))
        self.assertEqual(shapes, {("type", "filter"), ("type", "filter", "projection"), ("type", "pipeline"), ("error",)})

    def test_examples(self):
        ex = {"schema": {"collection": "c", "fields": []}}
        for out, want in [
            ({"type": "find", "filter": {"topic": "café", "n": {"$gte": 2}}}, '{"filter": {"topic": "café", "n": {"$gte": 2}}}'),
            ({"type": "find", "filter": {}, "projection": {"b": 1, "a": 1}}, '{"filter": {}, "projection": {"b": 1, "a": 1}}'),
            ({"type": "aggregate", "pipeline": [{"$group": {"_id": "$a", "n": {"$sum": 1}}}]},
             '{"pipeline": [{"$group": {"_id": "$a", "n": {"$sum": 1}}}]}'),
            ({"error": "cannot"}, '{"error": "cannot"}'),
        ]:
            self.assertEqual(expdata.bare_completion(dict(ex, output=out)), want + expdata.IM_END)

    def test_scorer_rejects_bare_at_syntax(self):
        """t2m score on bare outputs (without <|im_end|>, as generation leaves them) for every example of the
        published eval and held_out splits: every one fails layer 1 with "Missing 'type' field" (overall 0);
        the same outputs with "type" put back score exactly as the gold outputs do."""
        with tempfile.TemporaryDirectory() as d:
            for split in ("eval", "held_out"):
                path = os.path.join(PUBLISHED, split + ".jsonl")
                exs = self.published(split)
                bare = [expdata.bare_completion(ex)[:-len(expdata.IM_END)] for ex in exs]
                back = [self.retyped(b, ex["output"]["type"]) if "type" in ex["output"] else b for b, ex in zip(bare, exs)]
                for name, preds in (("bare", bare), ("retyped", back)):
                    with open(os.path.join(d, name + ".jsonl"), "w", encoding="utf-8") as f:
                        for p in preds:
                            f.write(json.dumps({"prediction": p}) + "\n")
                    t2m("score", "--split", path, "--predictions", os.path.join(d, name + ".jsonl"), "--output-dir", d,
                        "--run-name", name + "_" + split)
                t2m("score", "--split", path, "--gold", "--output-dir", d, "--run-name", "gold_" + split)
                rows = expdata.read_jsonl(os.path.join(d, "bare_" + split, split + "_predictions.jsonl"))
                self.assertEqual(len(rows), len(exs))
                for r, b in zip(rows, bare):
                    self.assertFalse(r["syntax"]["passed"], r)
                    self.assertEqual(r["syntax"].get("errors"), ["Missing 'type' field"], r)
                    self.assertFalse(r["passed_all"])
                    self.assertFalse(expdata.syntax_ok(b), b)
                rb, rr, rg = (read_json(os.path.join(d, n + "_" + split, split + "_report.json")) for n in ("bare", "retyped", "gold"))
                self.assertEqual((rb["syntax_passed"], rb["overall_passed"]), (0, 0))
                self.assertEqual(rb["overall_with_refusals_passed"], rb["negatives"])  # only the unchanged negatives
                self.assertGreater(rr["non_negative"]["total"], 150)
                for k in ("syntax_passed", "operators_passed", "fields_passed", "overall_passed", "exact_matches",
                          "overall_with_refusals_passed", "non_negative"):
                    self.assertEqual(rr[k], rg[k], k)
                self.assertEqual(rr["non_negative"]["overall_pass_rate"], 1)

    def test_own_format_match(self):
        """make_small_base.py's check: each format's rendered gold matches in its own format only."""
        exs = self.published("eval")
        for ex in exs:
            text = {f: r(ex)[:-len(expdata.IM_END)] for f, r in expdata.RENDERERS.items()}
            for f in expdata.RENDERERS:
                self.assertTrue(expdata.own_format_match(" " + text[f] + "\n", ex, f), (f, text[f]))
            if "type" in ex["output"]:
                self.assertFalse(expdata.own_format_match(text["bare"], ex, "json"))
                self.assertFalse(expdata.own_format_match(text["json"], ex, "bare"))
                self.assertFalse(expdata.own_format_match(text["shell"], ex, "bare"))
                self.assertTrue(expdata.own_format_match(self.retyped(text["bare"], ex["output"]["type"]), ex, "json"))


class TestBaseConfig(unittest.TestCase):
    def test_t2m_reads_a_tied_checkpoint(self):
        cfg = expdata.base_config(hidden=16, layers=1, heads=2, kv_heads=1, intermediate=32, vocab=64)
        self.assertTrue(cfg["tie_word_embeddings"])
        H, I, V, D = 16, 32, 64, 8
        rng = random.Random(0)
        r = lambda n: [rng.gauss(0, 0.02) for _ in range(n)]
        ts = {"model.embed_tokens.weight": ([V, H], r(V * H)), "model.norm.weight": ([H], [1.0] * H)}
        p = "model.layers.0."
        for name, out, inn, bias in (("self_attn.q_proj", 2 * D, H, True), ("self_attn.k_proj", D, H, True),
                                     ("self_attn.v_proj", D, H, True), ("self_attn.o_proj", H, 2 * D, False),
                                     ("mlp.gate_proj", I, H, False), ("mlp.up_proj", I, H, False), ("mlp.down_proj", H, I, False)):
            ts[p + name + ".weight"] = ([out, inn], r(out * inn))
            if bias:
                ts[p + name + ".bias"] = ([out], r(out))
        ts[p + "input_layernorm.weight"] = ([H], [1.0] * H)
        ts[p + "post_attention_layernorm.weight"] = ([H], [1.0] * H)
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(cfg, f, indent=2)
            write_safetensors(os.path.join(d, "model.safetensors"), ts)
            out = os.path.join(d, "logits.safetensors")
            t2m("forward", "--model-dir", d, "--ids", "1,2,3", "--out", out)
            with open(out, "rb") as f:
                n = struct.unpack("<Q", f.read(8))[0]
                header = json.loads(f.read(n))
            self.assertEqual(header["logits"]["shape"], [1, 3, V])


if __name__ == "__main__":
    if not os.path.exists(T2M):
        sys.exit("%s missing: run make build (or set T2M)" % T2M)
    unittest.main(verbosity=2)
