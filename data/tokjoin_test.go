package data

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/t2m/t2m/tokenizer"
)

const qwenTokenizer = "../../shared/tokenizers/qwen2.5/tokenizer.json"

// TestSeparateEncodingMatchesJoint backs the choice documented on Sequence: with the Qwen2
// tokenizer, encoding prompt and completion separately gives the same ids as encoding
// their concatenation, on every 5th example of the shared data set (all of them take
// seconds on a loaded CI machine).
func TestSeparateEncodingMatchesJoint(t *testing.T) {
	tok, err := tokenizer.Load(qwenTokenizer)
	if err != nil {
		t.Skipf("Qwen2 tokenizer not available: %v", err)
	}
	var exs []Example
	for _, split := range []string{"train", "eval", "held_out"} {
		e, err := ReadExamples(filepath.Join(sharedData, split+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(e); i += 5 {
			exs = append(exs, e[i])
		}
	}
	start := time.Now()
	seqs, st, err := Tokenize(tok, exs, DefaultMaxLen)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tokenized %d examples in %v: %+v", len(exs), time.Since(start), st)
	for _, s := range seqs {
		ex := exs[s.Example]
		c, _ := Completion(ex)
		joint := tok.Encode(Prompt(ex) + c)
		got := make([]int, len(s.IDs))
		for i, id := range s.IDs {
			got[i] = int(id)
		}
		if !slices.Equal(got, joint[:min(len(joint), len(got))]) || (len(joint) <= DefaultMaxLen && len(joint) != len(got)) {
			t.Fatalf("example %d (%s): separate encoding differs from joint encoding", s.Example, ex.Intent)
		}
	}
}
