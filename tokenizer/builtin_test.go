package tokenizer

import (
	"testing"
)

func TestBytesTokenizer(t *testing.T) {
	tok := Bytes()
	text := "<|im_start|>user\nCount {\"a\": 1} ünïcode 日本<|im_end|>\n<|endoftext|>"
	ids := tok.Encode(text)
	// Bytes between the special tokens, one id each.
	plain := len("user\nCount {\"a\": 1} ünïcode 日本") + len("\n")
	if len(ids) != plain+3 {
		t.Fatalf("got %d ids, want %d (one per byte plus 3 special tokens): %v", len(ids), plain+3, ids)
	}
	if ids[0] != ImStartID || ids[len(ids)-1] != EndOfTextID || ids[len(ids)-3] != ImEndID {
		t.Errorf("special ids: first %d, last %d, im_end slot %d", ids[0], ids[len(ids)-1], ids[len(ids)-3])
	}
	if got := tok.Decode(ids); got != text {
		t.Errorf("decode = %q, want %q", got, text)
	}
	// Qwen2 numbers its single-byte tokens in code point order of GPT-2's alphabet.
	for _, c := range []struct {
		text string
		id   int
	}{{"!", 0}, {"A", 32}, {"a", 64}, {" ", 220}, {"\n", 198}} {
		got := tok.Encode(c.text)
		if len(got) != 1 || got[0] != c.id {
			t.Errorf("Encode(%q) = %v, want [%d] (Qwen2's id)", c.text, got, c.id)
		}
	}
	for name, want := range map[string]int{ImEnd: ImEndID, ImStart: ImStartID, EndOfText: EndOfTextID} {
		if id, ok := tok.TokenID(name); !ok || id != want {
			t.Errorf("TokenID(%s) = %d, %v; want %d", name, id, ok, want)
		}
	}
	for _, id := range ids {
		if id < 0 || (id > 255 && id < EndOfTextID) {
			t.Fatalf("id %d outside the byte range and the special tokens", id)
		}
	}
}

func TestDecodeSkipSpecial(t *testing.T) {
	tok := Bytes()
	ids := tok.Encode("{\"a\": 1}<|im_end|><|endoftext|>")
	if got := tok.DecodeSkipSpecial(ids); got != "{\"a\": 1}" {
		t.Errorf("DecodeSkipSpecial = %q", got)
	}
	if got := tok.Decode(ids); got != "{\"a\": 1}<|im_end|><|endoftext|>" {
		t.Errorf("Decode = %q", got)
	}
}
