package tokenizer

import (
	"encoding/json"
	"testing"
)

// FuzzLoad checks that loading any tokenizer.json bytes gives a tokenizer or an error, never a panic or
// a huge allocation (ids are bounded by MaxTokenID), and that a loaded tokenizer encodes and decodes
// without panicking and gives ids below VocabSize. The seeds are small valid files and the hostile
// shapes of issue 11 (huge ids, no merges).
func FuzzLoad(f *testing.F) {
	seed := func(doc map[string]any) {
		b, err := json.Marshal(doc)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(charModel([]string{"a b", "b c"}))
	seed(charModel(nil))
	huge := charModel([]string{"a b"})
	huge["model"].(map[string]any)["vocab"] = map[string]int{"a": 0, "b": 1, "ab": 1 << 62}
	seed(huge)
	added := charModel([]string{"a b"})
	added["added_tokens"] = []any{map[string]any{"id": 1 << 40, "content": "<x>"}}
	seed(added)
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 2147483648}, "merges": []}}`))
	f.Add([]byte(`{"model": {"vocab": {"a": 0}}, "added_tokens": [{"id": -1, "content": "x"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		tok, err := parse("fuzz.json", raw)
		if err != nil {
			return
		}
		if tok.VocabSize() > MaxTokenID+1 {
			t.Fatalf("VocabSize %d beyond MaxTokenID", tok.VocabSize())
		}
		for _, s := range []string{"abc", "a b\tc", "<x>ab", "\xff\x00"} {
			for _, id := range tok.Encode(s) {
				if id < 0 || id >= tok.VocabSize() {
					t.Fatalf("Encode(%q) gave id %d outside [0, %d)", s, id, tok.VocabSize())
				}
			}
		}
		_ = tok.Decode([]int{0, 1, 2, -1, tok.VocabSize()})
	})
}
