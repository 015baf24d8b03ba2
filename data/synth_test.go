package data

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateDeterministicFiles(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		tr, ev, ho, err := Generate(42)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteSplits(dir, tr, ev, ho); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"train.jsonl", "eval.jsonl", "held_out.jsonl"} {
		x, err1 := os.ReadFile(filepath.Join(a, name))
		y, err2 := os.ReadFile(filepath.Join(b, name))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs with seed 42", name)
		}
		// Written files read back with the reader every command uses.
		exs, err := ReadExamples(filepath.Join(a, name))
		if err != nil || len(exs) == 0 {
			t.Errorf("%s: %d examples, %v", name, len(exs), err)
		}
	}
	entries, _ := os.ReadDir(a)
	if len(entries) != 3 {
		t.Errorf("output dir holds %d entries, want the 3 splits only (no temp files)", len(entries))
	}
	other, _, _, err := Generate(7)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _, _ := Generate(42)
	if len(other) == len(first) && string(other[0].Output) == string(first[0].Output) && other[0].Intent == first[0].Intent {
		t.Errorf("seeds 7 and 42 give the same first example")
	}
}

func TestGenerateSplitsShape(t *testing.T) {
	train, eval, held, err := Generate(42)
	if err != nil {
		t.Fatal(err)
	}
	near := func(name string, got, want int) {
		if got < want*9/10 || got > want*11/10 {
			t.Errorf("%s: %d examples, want about %d", name, got, want)
		}
	}
	near("train", len(train), 1500)
	near("eval", len(eval), 170)
	near("held_out", len(held), 420)

	trainColl, heldColl, domains := map[string]bool{}, map[string]bool{}, map[string]bool{}
	negatives, total := 0, 0
	for split, exs := range map[string][]Example{"train": train, "eval": eval, "held_out": held} {
		for i, ex := range exs {
			total++
			if split == "held_out" {
				heldColl[ex.Schema.Collection] = true
			} else {
				trainColl[ex.Schema.Collection] = true
				domains[ex.Schema.Domain] = true
			}
			line, err := MarshalExample(ex)
			if err != nil {
				t.Fatalf("%s[%d]: %v", split, i, err)
			}
			back, err := ParseExample([]byte(line))
			if err != nil {
				t.Fatalf("%s[%d]: %v\n%s", split, i, err, line)
			}
			if back.Intent != ex.Intent || back.IsNegative != ex.IsNegative {
				t.Fatalf("%s[%d]: round trip changed the example", split, i)
			}
			if ex.IsNegative {
				negatives++
				if !strings.HasPrefix(string(ex.Output), `{"error": "Field '`) {
					t.Errorf("%s[%d]: negative output %s", split, i, ex.Output)
				}
			}
		}
	}
	if len(trainColl) < 16 || len(domains) < 8 || len(heldColl) != 3 {
		t.Errorf("%d training collections over %d domains, %d held-out; want >=16, >=8, 3", len(trainColl), len(domains), len(heldColl))
	}
	for c := range heldColl {
		if trainColl[c] {
			t.Errorf("held-out collection %s appears in train/eval", c)
		}
	}
	if rate := float64(negatives) / float64(total); rate < 0.12 || rate > 0.18 {
		t.Errorf("negative rate %.3f, want about 0.15", rate)
	}
}
