package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/tokenizer"
	"github.com/t2m/t2m/train"
)

// recordingGenerator answers like lengthGenerator and records every prompt it is given, in order.
type recordingGenerator struct{ prompts *[][]int32 }

func (g recordingGenerator) Generate(prompts [][]int32, opt model.GenerateOptions) ([][]int32, error) {
	*g.prompts = append(*g.prompts, prompts...)
	return lengthGenerator{}.Generate(prompts, opt)
}

func (recordingGenerator) Describe() string { return "" }
func (recordingGenerator) Close() error     { return nil }

// promptText is a prompt's text (the tiny model's byte tokenizer; special tokens left out).
func promptText(p []int32) string {
	ids := make([]int, len(p))
	for i, id := range p {
		ids[i] = int(id)
	}
	return tokenizer.Bytes().DecodeSkipSpecial(ids)
}

// TestGenerationOrderGroupsSharedPrefixes: a split whose collections alternate reaches the generator in the
// lexicographic order of its prompts' ids, so each collection's prompts (which share the system prompt and
// the schema) are next to one another — what lets a GPU prefill reuse a cached prefix — and every example
// still gets the output of its own prompt.
func TestGenerationOrderGroupsSharedPrefixes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	colls := []string{"zeta", "alpha", "zeta", "alpha", "mid", "alpha"}
	intents := []string{"a over 1", "show a above one", "a", "count a over two please", "a over 3", "list a"}
	var eval string
	for i, c := range colls {
		eval += shortExample(t, c, intents[i])
	}
	for split, body := range map[string]string{"train": shortExample(t, "c", "a"), "eval": eval,
		"held_out": shortExample(t, "museum_exhibits", "a over 1")} {
		if err := os.WriteFile(filepath.Join(dir, split+".jsonl"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("T2M_TOKENIZER", "")
	var seen [][]int32
	old := lookupDevice
	lookupDevice = func(name string) (train.Device, bool) {
		if name == "cuda" {
			return train.Device{Name: "cuda", NewGenerator: func(*model.Weights, *model.LoRAParams) (train.Generator, error) {
				return recordingGenerator{&seen}, nil
			}}, true
		}
		return train.LookupDevice(name)
	}
	t.Cleanup(func() { lookupDevice = old })
	res, err := Evaluate(EvalOptions{ModelOptions: ModelOptions{Model: "tiny", Device: "cuda"}, DataDir: dir, MaxLen: 2048,
		MaxNewTokens: 12, Batch: 2, RunName: "r", OutputDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(colls)+1 {
		t.Fatalf("the generator saw %d prompts, want %d", len(seen), len(colls)+1)
	}
	evalPrompts := seen[:len(colls)]
	if !slices.IsSortedFunc(evalPrompts, slices.Compare[[]int32]) {
		t.Error("eval prompts did not reach the generator in the lexicographic order of their ids")
	}
	var order []string // the collection of each prompt, in the order given
	for _, p := range evalPrompts {
		for _, c := range []string{"alpha", "mid", "zeta"} {
			if strings.Contains(promptText(p), "Collection: "+c+"\n") {
				order = append(order, c)
			}
		}
	}
	if want := []string{"alpha", "alpha", "alpha", "mid", "zeta", "zeta"}; !slices.Equal(order, want) {
		t.Errorf("collections in generation order %v, want %v (each collection's prompts together)", order, want)
	}
	lengths := map[string]int{} // each intent's prompt length
	for _, p := range evalPrompts {
		lengths[intentOf(promptText(p))] = len(p)
	}
	if len(lengths) != len(intents) {
		t.Fatalf("prompt lengths by intent %v: want one for each of %q", lengths, intents)
	}
	for j, r := range res.Splits[0].Results { // each example's output is its own prompt's length
		if want := fmt.Sprintf(`{"n": %d}`, lengths[intents[j]]); r.RawOutput != want {
			t.Errorf("eval example %d (%q): output %q, want %q", j, intents[j], r.RawOutput, want)
		}
	}
}

// intentOf is the intent line of a prompt's text: what follows "Intent: " up to the end of the turn.
func intentOf(text string) string {
	_, after, _ := strings.Cut(text, "Intent: ")
	if i := strings.IndexAny(after, "\n<"); i >= 0 {
		after = after[:i]
	}
	return after
}
