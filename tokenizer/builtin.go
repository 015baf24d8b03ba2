package tokenizer

import (
	"slices"
)

// Qwen2's special tokens and their ids, which the built-in byte tokenizer shares so that prompts, stop
// tokens and padding mean the same with it as with Qwen's tokenizer.json.
const (
	EndOfText   = "<|endoftext|>"
	ImStart     = "<|im_start|>"
	ImEnd       = "<|im_end|>"
	EndOfTextID = 151643
	ImStartID   = 151644
	ImEndID     = 151645
)

// Bytes returns the built-in byte-level tokenizer of models that come without a tokenizer.json (the
// built-in tiny model): every UTF-8 byte is one token, spelled in GPT-2's byte alphabet and numbered as
// Qwen2 numbers its 256 single-byte tokens (the alphabet's characters in code point order, so "!" is 0
// and "Ġ", the space, is 220), plus <|endoftext|>, <|im_start|> and <|im_end|> at Qwen2's ids. There are
// no merges, so text costs one token per byte: a ChatML prompt of the data set is about 1,000 tokens.
func Bytes() *Tokenizer {
	chars := make([]rune, 0, 256)
	for b := range 256 {
		chars = append(chars, byteToChar[b])
	}
	slices.Sort(chars)
	vocab := make(map[string]int, 256)
	for id, c := range chars {
		vocab[string(c)] = id
	}
	f := &fileJSON{
		Model:        modelJSON{Type: "BPE", Vocab: vocab},
		PreTokenizer: &componentJSON{Type: "ByteLevel"},
		Decoder:      &componentJSON{Type: "ByteLevel"},
	}
	for _, a := range []struct {
		content string
		id      int
	}{{EndOfText, EndOfTextID}, {ImStart, ImStartID}, {ImEnd, ImEndID}} {
		f.AddedTokens = append(f.AddedTokens, addedTokenJSON{ID: a.id, Content: a.content, Special: true})
	}
	t, err := build(f)
	if err != nil {
		// The file above is a constant of this package; build only fails on settings it does not support.
		panic("tokenizer: the built-in byte tokenizer does not build: " + err.Error())
	}
	return t
}

// DecodeSkipSpecial is Decode without the added tokens (<|im_end|>, <|endoftext|>, ...), as HF's
// decode(ids, skip_special_tokens=True) for Qwen2, whose added tokens are all special.
func (t *Tokenizer) DecodeSkipSpecial(ids []int) string {
	kept := make([]int, 0, len(ids))
	for _, id := range ids {
		if id >= 0 && id < len(t.idToToken) && t.hasID[id] {
			if added, ok := t.addedIDs[t.idToToken[id]]; ok && added == id {
				continue
			}
		}
		kept = append(kept, id)
	}
	return t.Decode(kept)
}
