package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTokenizer writes a tokenizer.json built from a map and returns its path.
func writeTokenizer(t *testing.T, doc map[string]any) string {
	t.Helper()
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// charModel is a small character-level BPE (no ByteLevel) over a, b, c, with an unk token.
func charModel(merges any) map[string]any {
	return map[string]any{
		"added_tokens": []any{
			map[string]any{"id": 10, "content": "<eos>", "normalized": false, "special": true},
		},
		"normalizer":    nil,
		"pre_tokenizer": map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `\S+`}, "behavior": "Isolated", "invert": false},
		"decoder":       nil,
		"model": map[string]any{
			"type": "BPE", "unk_token": "?", "fuse_unk": true,
			"vocab":  map[string]int{"?": 0, "a": 1, "b": 2, "c": 3, "aa": 4, "bc": 5, "ab": 6, "abc": 7},
			"merges": merges,
		},
	}
}

func mustLoad(t *testing.T, doc map[string]any) *Tokenizer {
	t.Helper()
	tok, err := Load(writeTokenizer(t, doc))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestBPEMergeOrder(t *testing.T) {
	for name, merges := range map[string]any{
		"pairs":   [][]string{{"b", "c"}, {"a", "a"}, {"a", "b"}},
		"strings": []string{"b c", "a a", "a b"},
	} {
		tok := mustLoad(t, charModel(merges))
		for _, c := range []struct {
			text string
			want []int
		}{
			{"abc", []int{1, 5}},              // "b c" has the lower rank, so "a b" never applies
			{"ab", []int{6}},                  // "a b" applies when nothing ranks lower
			{"aaa", []int{4, 1}},              // equal ranks: leftmost first
			{"aaaa", []int{4, 4}},             // then the next non-overlapping pair
			{"xyab", []int{0, 6}},             // unknown characters fuse into one unk
			{"ab<eos>a", []int{6, 10, 1}},     // the added token is not split off by the regex
			{"a\tb  c", []int{1, 0, 2, 0, 3}}, // gaps between matches are pieces too; unknown, fused
		} {
			got := tok.Encode(c.text)
			if !equalIDs(got, c.want) {
				t.Errorf("%s: Encode(%q) = %v, want %v", name, c.text, got, c.want)
			}
		}
		// Without a decoder HF joins the tokens with spaces.
		if got := tok.Decode([]int{6, 10, 1}); got != "ab <eos> a" {
			t.Errorf("%s: Decode = %q, want %q", name, got, "ab <eos> a")
		}
	}
}

func TestIgnoreMerges(t *testing.T) {
	doc := charModel([]string{"a b", "b c"})
	doc["model"].(map[string]any)["ignore_merges"] = true
	tok := mustLoad(t, doc)
	// "abc" is in the vocabulary, so it is taken whole although merging would give "ab c".
	if got := tok.Encode("abc"); !equalIDs(got, []int{7}) {
		t.Errorf("Encode(abc) with ignore_merges = %v, want [7]", got)
	}
}

func TestByteLevelWithRegex(t *testing.T) {
	doc := map[string]any{
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false}, // use_regex defaults to true
		"decoder":       map[string]any{"type": "ByteLevel"},
		"model": map[string]any{
			"type":   "BPE",
			"vocab":  map[string]int{"a": 0, "b": 1, "Ġ": 2, "bĠ": 3, "ab": 4, "Ġa": 5},
			"merges": []string{"b Ġ", "a b", "Ġ a"},
		},
	}
	tok := mustLoad(t, doc)
	// GPT-2's regex cuts "ab ab" into "ab" and " ab", so the top-ranked "b Ġ" cannot merge across them.
	if got, want := tok.Encode("ab ab"), []int{4, 2, 4}; !equalIDs(got, want) {
		t.Errorf("Encode(%q) = %v, want %v", "ab ab", got, want)
	}
	doc["pre_tokenizer"] = map[string]any{"type": "ByteLevel", "use_regex": false}
	tok = mustLoad(t, doc)
	if got, want := tok.Encode("ab ab"), []int{0, 3, 4}; !equalIDs(got, want) {
		t.Errorf("without the regex: Encode(%q) = %v, want %v", "ab ab", got, want)
	}
	if got := tok.Decode([]int{0, 3, 4}); got != "ab ab" {
		t.Errorf("Decode = %q, want %q", got, "ab ab")
	}
}

func TestNormalizedAddedToken(t *testing.T) {
	doc := charModel([]string{"a b"})
	doc["normalizer"] = map[string]any{"type": "NFKC"}
	doc["added_tokens"] = []any{
		// Written with a fullwidth "Ａ", which NFKC turns into "A": matched after normalization.
		map[string]any{"id": 11, "content": "<\uff21>", "normalized": true, "special": false},
	}
	tok := mustLoad(t, doc)
	for _, text := range []string{"ab<A>ab", "ab<\uff21>ab"} {
		if got := tok.Encode(text); !equalIDs(got, []int{6, 11, 6}) {
			t.Errorf("Encode(%q) = %v, want [6 11 6]", text, got)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"model": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("Load of invalid JSON: error %v, want one naming the file", err)
	}
	for _, c := range []struct {
		name, want string
		edit       func(doc map[string]any)
	}{
		{"normalizer", "Lowercase", func(d map[string]any) { d["normalizer"] = map[string]any{"type": "Lowercase"} }},
		{"split behavior", "Removed", func(d map[string]any) {
			d["pre_tokenizer"].(map[string]any)["behavior"] = "Removed"
		}},
		{"bad regex", "regex", func(d map[string]any) {
			d["pre_tokenizer"].(map[string]any)["pattern"] = map[string]any{"Regex": `(`}
		}},
		{"model type", "WordPiece", func(d map[string]any) { d["model"].(map[string]any)["type"] = "WordPiece" }},
		{"merge out of vocabulary", "merge 0", func(d map[string]any) { d["model"].(map[string]any)["merges"] = []string{"c a"} }},
		{"merge without space", "no space", func(d map[string]any) { d["model"].(map[string]any)["merges"] = []string{"ab"} }},
		{"unk missing", "unk_token", func(d map[string]any) { d["model"].(map[string]any)["unk_token"] = "<unk>" }},
		{"lstrip", "lstrip", func(d map[string]any) {
			d["added_tokens"] = []any{map[string]any{"id": 11, "content": "<x>", "lstrip": true}}
		}},
		{"decoder", "WordPiece", func(d map[string]any) { d["decoder"] = map[string]any{"type": "WordPiece"} }},
		{"post-processor", "TemplateProcessing", func(d map[string]any) {
			d["post_processor"] = map[string]any{"type": "TemplateProcessing"}
		}},
	} {
		doc := charModel([]string{"a b"})
		c.edit(doc)
		_, err := Load(writeTokenizer(t, doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Load error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
}

func TestLossyUTF8(t *testing.T) {
	// Expected strings follow Unicode's "maximal subpart" practice, which Rust's from_utf8_lossy uses; the
	// HF fixture's decode cases check the same against HF itself.
	for in, want := range map[string]string{
		"plain":            "plain",
		"\xf0\x9f\x98":     "\ufffd",
		"\xf0\x9f\x98x":    "\ufffdx",
		"\xed\xa0\x80":     "\ufffd\ufffd\ufffd",
		"\xc0\xaf":         "\ufffd\ufffd",
		"\xf4\x90\x80\x80": "\ufffd\ufffd\ufffd\ufffd",
		"\xe0\x80":         "\ufffd\ufffd",
		"\xe2\x82\xac\xe2": "\u20ac\ufffd",
		"\xef\xbf\xbd":     "\ufffd",
	} {
		if got := lossyUTF8([]byte(in)); got != want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", in, got, want)
		}
	}
}
