package tokenizer

import (
	"strings"

	"golang.org/x/text/unicode/norm"
)

// Tokenizer encodes text to token ids and back, as HF `tokenizers` does for the tokenizer.json it was
// loaded from. It is safe for concurrent use after Load.
type Tokenizer struct {
	vocab        map[string]int   // model tokens (byte-level symbols) -> id
	idToToken    []string         // id -> token text, added tokens included; see hasID
	hasID        []bool           // whether an id is assigned (vocabularies may have holes)
	merges       map[uint64]merge // pairKey(left id, right id) -> rank and merged id
	unkID        int              // -1: symbols missing from the vocabulary are dropped, as HF does
	fuseUnk      bool             // consecutive unknown symbols become one unk
	ignoreMerges bool             // a pre-token that is itself in the vocabulary is not merged

	addedIDs         map[string]int // added token content -> id
	rawAdded         addedMatcher   // added tokens with normalized=false: matched in the raw text
	normalizedSource []addedToken   // added tokens with normalized=true, as written in the file
	normalizedAdded  addedMatcher   // the same, normalized: matched in the normalized text

	normForms        []norm.Form   // normalizer; empty for none
	splits           []splitter    // Split pre-tokenizers (Isolated), applied in order
	byteLevel        bool          // ByteLevel pre-tokenizer: BPE runs on bytes
	byteLevelDecoder bool          // ByteLevel decoder: tokens map back to bytes
	byteIDs          [256]int      // byte -> id of its byte-level symbol, -1 if missing
	charToByte       map[rune]byte // byte-level symbol -> byte, for decoding
	cache            *cache        // pre-token -> ids
}

// TokenID returns the id of a token, an added token (e.g. "<|im_end|>") or a vocabulary token in its
// byte-level spelling (e.g. "Ġthe"), and whether it exists.
func (t *Tokenizer) TokenID(token string) (int, bool) {
	if id, ok := t.addedIDs[token]; ok {
		return id, true
	}
	id, ok := t.vocab[token]
	return id, ok
}

// VocabSize returns the number of token ids, added tokens included: one more than the largest id. A
// model's embedding table may be larger (Qwen2 pads it to a multiple of 128).
func (t *Tokenizer) VocabSize() int {
	return len(t.idToToken)
}

// Encode returns the token ids of text. Added tokens written in the text become their ids and are never
// split; the rest is normalized, pre-tokenized and merged by BPE. It never panics: bytes that are not
// valid UTF-8 go through as they are and end up in byte tokens (HF accepts only valid strings, so there is
// no reference to match there).
func (t *Tokenizer) Encode(text string) []int {
	ids := make([]int, 0, len(text)/3+1)
	t.rawAdded.split(text, func(piece string, addedID int) {
		if addedID >= 0 {
			ids = append(ids, addedID)
			return
		}
		t.normalizedAdded.split(t.normalize(piece), func(piece string, addedID int) {
			if addedID >= 0 {
				ids = append(ids, addedID)
				return
			}
			ids = t.encodeNormalized(piece, ids)
		})
	})
	return ids
}

// normalize applies the normalizer's forms in order.
func (t *Tokenizer) normalize(s string) string {
	for _, f := range t.normForms {
		s = f.String(s)
	}
	return s
}

// encodeNormalized pre-tokenizes normalized text and appends the BPE ids of each pre-token.
func (t *Tokenizer) encodeNormalized(s string, ids []int) []int {
	if s == "" {
		return ids
	}
	pieces := []string{s}
	for _, split := range t.splits {
		var next []string
		for _, p := range pieces {
			next = split(p, next)
		}
		pieces = next
	}
	for _, p := range pieces {
		ids = t.encodeWord(p, ids)
	}
	return ids
}

// Decode returns the text of ids: byte-level tokens map back to bytes, added tokens to their text, and
// bytes that are not valid UTF-8 become U+FFFD as in Rust's String::from_utf8_lossy. Ids outside the
// vocabulary are skipped, as HF skips them.
func (t *Tokenizer) Decode(ids []int) string {
	if !t.byteLevelDecoder {
		parts := make([]string, 0, len(ids))
		for _, id := range ids {
			if id >= 0 && id < len(t.idToToken) && t.hasID[id] {
				parts = append(parts, t.idToToken[id])
			}
		}
		return strings.Join(parts, " ") // HF joins with a space when there is no decoder
	}
	buf := make([]byte, 0, 4*len(ids))
	for _, id := range ids {
		if id < 0 || id >= len(t.idToToken) || !t.hasID[id] {
			continue
		}
		buf = t.appendTokenBytes(buf, t.idToToken[id])
	}
	return lossyUTF8(buf)
}

// appendTokenBytes appends the bytes of a byte-level token. A token with a character outside the byte
// alphabet (an added token such as "<|im_end|>" may have one) is taken as its UTF-8 text, as HF does.
func (t *Tokenizer) appendTokenBytes(buf []byte, tok string) []byte {
	start := len(buf)
	for _, r := range tok {
		b, ok := t.charToByte[r]
		if !ok {
			return append(buf[:start], tok...)
		}
		buf = append(buf, b)
	}
	return buf
}
