#!/usr/bin/env python3
"""How many raw outputs two generations of the same examples share, per split (stdlib only).

  python3 scripts/experiment/same_outputs.py T2M_RUN_DIR HF_OUT_DIR

T2M_RUN_DIR is a t2m run folder (eval_predictions.jsonl, held_out_predictions.jsonl: "raw_output" per row);
HF_OUT_DIR is hf_peft_finetune.py's --out (the same files: "prediction" per row, the raw generated text). Used
by run_table.sh lr after t2m eval generates with an HF PEFT adapter: equal outputs there mean t2m's
generation and scoring reproduce HF's, so any gap between the rows comes from the training."""
import json
import os
import sys


def rows(path, key):
    with open(path) as f:
        return [json.loads(line)[key] for line in f if line.strip()]


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    t2m_dir, hf_dir = argv[1:]
    for split in ("eval", "held_out"):
        name = split + "_predictions.jsonl"
        a = rows(os.path.join(t2m_dir, name), "raw_output")
        b = rows(os.path.join(hf_dir, name), "prediction")
        if len(a) != len(b):
            sys.exit("%s: %d t2m rows, %d HF rows" % (split, len(a), len(b)))
        same = sum(1 for x, y in zip(a, b) if (x or "").strip() == (y or "").strip())
        print("%s: %d of %d raw outputs identical (%s vs %s)" % (split, same, len(b), t2m_dir, hf_dir))


if __name__ == "__main__":
    main(sys.argv)
