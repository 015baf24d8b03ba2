package tokenizer

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
)

// The vocabulary read back is the file's: every vocab entry at its id, the added tokens with their special
// flags, and the merges in file order (Qwen2.5's file has no repeated merge).
func TestReadVocabularyQwen(t *testing.T) {
	path := qwenTokenizerPath
	if _, err := os.Stat(path); err != nil {
		t.Skip("no ../shared tokenizer")
	}
	v, err := ReadVocabulary(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		Model struct {
			Vocab  map[string]int  `json:"vocab"`
			Merges json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	for tok, id := range f.Model.Vocab {
		if v.Tokens[id] != tok {
			t.Fatalf("id %d: %q, file says %q", id, v.Tokens[id], tok)
		}
	}
	for _, a := range f.AddedTokens {
		if v.Tokens[a.ID] != a.Content || v.Added[a.ID] != a.Special {
			t.Fatalf("added %d: %q special %v, file says %q special %v", a.ID, v.Tokens[a.ID], v.Added[a.ID], a.Content, a.Special)
		}
	}
	if len(v.Added) != len(f.AddedTokens) || len(v.Tokens) != 151665 {
		t.Errorf("%d added (file %d), %d tokens (want 151665)", len(v.Added), len(f.AddedTokens), len(v.Tokens))
	}
	want, err := parseMerges(f.Model.Merges)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(v.Merges, want) {
		t.Errorf("%d merges, file has %d; first %v vs %v", len(v.Merges), len(want), v.Merges[:2], want[:2])
	}
}
