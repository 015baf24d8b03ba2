package data

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// pubSeeds are the seeds the published-style tests generate with.
var pubSeeds = []uint64{1, 2, 3, 42, 101}

func generatePub(t testing.TB, seed uint64) (train, eval, held []Example) {
	t.Helper()
	train, eval, held, err := GenerateStyle(seed, StylePublished)
	if err != nil {
		t.Fatal(err)
	}
	return train, eval, held
}

func TestPublishedStyleDeterministic(t *testing.T) {
	write := func(seed uint64) string {
		dir := t.TempDir()
		tr, ev, ho := generatePub(t, seed)
		if err := WriteSplits(dir, tr, ev, ho); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	a, b, c := write(42), write(42), write(7)
	for _, name := range []string{"train.jsonl", "eval.jsonl", "held_out.jsonl"} {
		x, err1 := os.ReadFile(filepath.Join(a, name))
		y, err2 := os.ReadFile(filepath.Join(b, name))
		z, err3 := os.ReadFile(filepath.Join(c, name))
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatal(err1, err2, err3)
		}
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Errorf("%s: seed 42 gives different bytes on two runs (or none)", name)
		}
		if bytes.Equal(x, z) {
			t.Errorf("%s: seeds 42 and 7 give the same bytes", name)
		}
	}
}

func TestGenerateStyleT2MIsGenerate(t *testing.T) {
	for _, style := range []string{StyleT2M, ""} {
		a1, a2, a3, err1 := Generate(9)
		b1, b2, b3, err2 := GenerateStyle(9, style)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		for i, pair := range [][2][]Example{{a1, b1}, {a2, b2}, {a3, b3}} {
			if len(pair[0]) != len(pair[1]) {
				t.Fatalf("style %q split %d: %d examples, Generate %d", style, i, len(pair[1]), len(pair[0]))
			}
			for j := range pair[0] {
				x, _ := MarshalExample(pair[0][j])
				y, _ := MarshalExample(pair[1][j])
				if x != y {
					t.Fatalf("style %q split %d example %d differs from Generate:\n%s\n%s", style, i, j, y, x)
				}
			}
		}
	}
	_, _, _, err := GenerateStyle(9, "bogus")
	if err == nil || !strings.Contains(err.Error(), `"bogus"`) || !strings.Contains(err.Error(), "t2m, published") {
		t.Errorf("unknown style: error %v, want one naming the style and the valid styles", err)
	}
}

// pairKey is an example's abstraction: intent template and output shape.
func pairKey(ex Example, indexed bool) string {
	intent, shape, _ := abstractExample(ex, indexed)
	return intent + "  =>  " + shape
}

// TestPublishedStyleMatchesPublishedSet abstracts every generated example (several seeds) and
// every published example to (intent template, output shape): every generated pair occurs in the
// published set (precision), and the generated pairs cover the published examples (coverage).
func TestPublishedStyleMatchesPublishedSet(t *testing.T) {
	var published []Example
	for _, split := range []string{"train", "eval", "held_out"} {
		published = append(published, readPublished(t, split)...)
	}
	var generated []Example
	for _, seed := range pubSeeds {
		tr, ev, ho := generatePub(t, seed)
		generated = slices.Concat(generated, tr, ev, ho)
	}
	for _, indexed := range []bool{false, true} {
		pub, gen := map[string]int{}, map[string]int{}
		for _, ex := range published {
			pub[pairKey(ex, indexed)]++
		}
		for _, ex := range generated {
			gen[pairKey(ex, indexed)]++
		}
		var unseen []string
		for k, n := range gen {
			if pub[k] == 0 {
				unseen = append(unseen, k+"  (x"+strconv.Itoa(n)+")")
			}
		}
		sort.Strings(unseen)
		for _, k := range unseen {
			t.Errorf("indexed=%v: generated pair not in the published set: %s", indexed, k)
		}
		covered := 0
		var missing []string
		for k, n := range pub {
			if gen[k] > 0 {
				covered += n
			} else {
				missing = append(missing, k+"  (x"+strconv.Itoa(n)+")")
			}
		}
		sort.Strings(missing)
		rate := float64(covered) / float64(len(published))
		t.Logf("indexed=%v: %d generated pairs, %d published pairs; coverage %d/%d published examples = %.2f%%",
			indexed, len(gen), len(pub), covered, len(published), 100*rate)
		for _, k := range missing {
			t.Logf("indexed=%v: published pair never generated: %s", indexed, k)
		}
		if !indexed && rate < 0.95 {
			t.Errorf("coverage %.2f%% of the published examples, want >= 95%%", 100*rate)
		}
		if len(pub) < 40 || len(gen) < 40 {
			t.Errorf("indexed=%v: %d published and %d generated pairs; the abstraction lost too much", indexed, len(pub), len(gen))
		}
	}
}
