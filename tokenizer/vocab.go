package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
)

// Vocabulary is a tokenizer as other formats store it (GGUF's tokenizer.ggml.* keys): every token by id,
// which ids are added tokens and whether each is special, and the BPE merges in rank order.
type Vocabulary struct {
	// Tokens holds each id's token text: byte-level spelling for model tokens ("Ġthe"), the content for
	// added tokens ("<|im_end|>"); "" for an id nothing is assigned to.
	Tokens []string
	// Added maps the id of each added token to its "special" flag.
	Added map[int]bool
	// Merges are the BPE merges, lowest rank (applied first) first.
	Merges [][2]string
}

// ReadVocabulary reads a tokenizer.json that Load accepts and returns its vocabulary.
func ReadVocabulary(path string) (*Vocabulary, error) {
	t, err := Load(path)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var f struct {
		AddedTokens []struct {
			ID      int  `json:"id"`
			Special bool `json:"special"`
		} `json:"added_tokens"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return t.vocabulary(f.AddedTokens), nil
}

// vocabulary lists t's tokens and merges; added gives the special flag of each added token.
func (t *Tokenizer) vocabulary(added []struct {
	ID      int  `json:"id"`
	Special bool `json:"special"`
}) *Vocabulary {
	v := &Vocabulary{Tokens: make([]string, len(t.idToToken)), Added: map[int]bool{}}
	for id, tok := range t.idToToken {
		if t.hasID[id] {
			v.Tokens[id] = tok
		}
	}
	for _, a := range added {
		v.Added[a.ID] = a.Special
	}
	type ranked struct {
		rank        int32
		left, right int
	}
	ms := make([]ranked, 0, len(t.merges))
	for key, m := range t.merges {
		ms = append(ms, ranked{m.rank, int(key >> 32), int(uint32(key))})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].rank < ms[j].rank })
	v.Merges = make([][2]string, len(ms))
	for i, m := range ms {
		v.Merges[i] = [2]string{t.idToToken[m.left], t.idToToken[m.right]}
	}
	return v
}
