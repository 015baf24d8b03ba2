package data

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"unicode/utf8"
)

// runeEncoder is a fake tokenizer: one id per rune (its code point).
type runeEncoder struct{}

func (runeEncoder) Encode(s string) []int {
	var ids []int
	for _, r := range s {
		ids = append(ids, int(r))
	}
	return ids
}

func testExamples(n int) []Example {
	exs := make([]Example, n)
	for i := range exs {
		exs[i] = Example{
			Schema:     Schema{Collection: "c", Domain: "d", Fields: []Field{{Name: "a", Type: "int", Role: "measure"}}},
			AllowedOps: AllowedOps{StageOperators: []string{"$match"}},
			Intent:     fmt.Sprintf("intent %d%s", i, string(make([]byte, i%3))),
			Output:     json.RawMessage(fmt.Sprintf(`{"type":"find","filter":{"a":%d}}`, i)),
		}
	}
	return exs
}

func TestTokenizeLabelsAndTruncation(t *testing.T) {
	exs := testExamples(1)
	p := utf8.RuneCountInString(Prompt(exs[0]))
	comp, _ := Completion(exs[0])
	c := utf8.RuneCountInString(comp)

	seqs, st, err := Tokenize(runeEncoder{}, exs, DefaultMaxLen*4)
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 1 || st != (TokenizeStats{Kept: 1}) {
		t.Fatalf("got %d sequences, stats %+v", len(seqs), st)
	}
	s := seqs[0]
	if s.PromptLen != p || len(s.IDs) != p+c {
		t.Fatalf("PromptLen %d, len %d; want %d, %d", s.PromptLen, len(s.IDs), p, p+c)
	}
	if string(rune(s.IDs[p])) != "{" {
		t.Errorf("first completion id %d, want '{'", s.IDs[p])
	}
	labels := s.Labels()
	for i, l := range labels {
		want := s.IDs[i]
		if i < p {
			want = IgnoreIndex
		}
		if l != want {
			t.Fatalf("label[%d] = %d, want %d", i, l, want)
		}
	}

	// Cut inside the completion: kept with 3 completion tokens.
	seqs, st, err = Tokenize(runeEncoder{}, exs, p+3)
	if err != nil || len(seqs) != 1 || st.Truncated != 1 || len(seqs[0].IDs) != p+3 {
		t.Fatalf("truncation: %v, %d seqs, %+v", err, len(seqs), st)
	}
	// No completion token left: dropped and counted.
	seqs, st, err = Tokenize(runeEncoder{}, exs, p)
	if err != nil || len(seqs) != 0 || st.Dropped != 1 {
		t.Fatalf("drop: %v, %d seqs, %+v", err, len(seqs), st)
	}
}

func TestBatchesPaddingAndShuffle(t *testing.T) {
	exs := testExamples(10)
	seqs, _, err := Tokenize(runeEncoder{}, exs, 4096)
	if err != nil {
		t.Fatal(err)
	}
	const pad = -7
	batches, err := Batches(seqs, BatchOptions{Size: 4, PadID: pad, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(batches) != 3 || len(batches[2].IDs) != 2 {
		t.Fatalf("got %d batches (last of %d rows), want 3 with 4, 4, 2 rows", len(batches), len(batches[len(batches)-1].IDs))
	}
	var seen []int
	for _, b := range batches {
		T := len(b.IDs[0])
		longest := 0
		for i, ex := range b.Examples {
			seen = append(seen, ex)
			s := seqs[ex]
			longest = max(longest, len(s.IDs))
			if len(b.IDs[i]) != T || len(b.Labels[i]) != T || len(b.Mask[i]) != T {
				t.Fatalf("row %d: ragged batch", i)
			}
			want := s.Labels()
			for t2 := range T {
				real := t2 < len(s.IDs)
				switch {
				case real && (b.IDs[i][t2] != s.IDs[t2] || b.Mask[i][t2] != 1 || b.Labels[i][t2] != want[t2]):
					t.Fatalf("example %d position %d: id %d mask %d label %d", ex, t2, b.IDs[i][t2], b.Mask[i][t2], b.Labels[i][t2])
				case !real && (b.IDs[i][t2] != pad || b.Mask[i][t2] != 0 || b.Labels[i][t2] != IgnoreIndex):
					t.Fatalf("example %d padding %d: id %d mask %d label %d", ex, t2, b.IDs[i][t2], b.Mask[i][t2], b.Labels[i][t2])
				}
			}
		}
		if longest != T {
			t.Errorf("batch padded to %d, longest sequence %d", T, longest)
		}
	}
	sorted := slices.Clone(seen)
	slices.Sort(sorted)
	for i, v := range sorted {
		if v != i {
			t.Fatalf("examples in batches %v: not a permutation of 0..9", seen)
		}
	}
	if slices.Equal(seen, sorted) {
		t.Errorf("order %v not shuffled", seen)
	}

	again, _ := Batches(seqs, BatchOptions{Size: 4, PadID: pad, Seed: 1})
	other, _ := Batches(seqs, BatchOptions{Size: 4, PadID: pad, Seed: 2})
	if !slices.Equal(again[0].Examples, batches[0].Examples) || !slices.Equal(again[2].Examples, batches[2].Examples) {
		t.Errorf("same seed, different order")
	}
	if slices.Equal(other[0].Examples, batches[0].Examples) && slices.Equal(other[1].Examples, batches[1].Examples) {
		t.Errorf("seeds 1 and 2 give the same order")
	}

	fixed, err := Batches(seqs, BatchOptions{Size: 3, PadID: 0, PadTo: 1000, Seed: 1})
	if err != nil || len(fixed[0].IDs[0]) != 1000 {
		t.Fatalf("PadTo: %v", err)
	}
	if _, err := Batches(seqs, BatchOptions{Size: 3, PadTo: 10}); err == nil {
		t.Errorf("PadTo shorter than a sequence: want an error")
	}
	if _, err := Batches(seqs, BatchOptions{Size: 0}); err == nil {
		t.Errorf("batch size 0: want an error")
	}
}
