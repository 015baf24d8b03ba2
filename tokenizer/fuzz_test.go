package tokenizer

import (
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// FuzzEncodeDecode checks that Encode and Decode never panic and that, for valid UTF-8, decoding an
// encoding gives back the NFC text (NFC applies between added tokens, which are matched before it). Its
// seed corpus, the fixture's strings and a few more, runs with every `go test`.
func FuzzEncodeDecode(f *testing.F) {
	for _, c := range loadFixture(f).Cases {
		f.Add(c.Text)
	}
	for _, s := range []string{"\xff", "a\xc3", "\xed\xa0\x80x", "<|im_end|\xff>", "<|im_end|>\u0338", "\u0301<|im_start|>", strings.Repeat("ab ", 300)} {
		f.Add(s)
	}
	tok := qwen(f)
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s)
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("Encode(%q) gave id %d outside [0, %d)", s, id, tok.VocabSize())
			}
		}
		got := tok.Decode(ids)
		if !utf8.ValidString(got) {
			t.Fatalf("Decode(Encode(%q)) = %q is not valid UTF-8", s, got)
		}
		if !utf8.ValidString(s) {
			return
		}
		if want := normalizedOutsideAdded(tok, s); got != want {
			t.Fatalf("Decode(Encode(%q)) = %q, want %q", s, got, want)
		}
		if !containsAdded(tok, s) {
			if want := norm.NFC.String(s); got != want {
				t.Fatalf("Decode(Encode(%q)) = %q, want NFC %q", s, got, want)
			}
		}
	})
}

// FuzzDecode checks that Decode takes any ids, in range or not, without panicking, and returns valid UTF-8.
func FuzzDecode(f *testing.F) {
	for _, c := range loadFixture(f).DecodeCases {
		f.Add(idsToBytes(c.IDs))
	}
	f.Add(idsToBytes([]int{-5, 151645, 1 << 31, 0}))
	tok := qwen(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		ids := make([]int, len(raw)/4)
		for i := range ids {
			ids[i] = int(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
		if got := tok.Decode(ids); !utf8.ValidString(got) {
			t.Fatalf("Decode(%v) = %q is not valid UTF-8", ids, got)
		}
	})
}

// containsAdded reports whether s contains the text of an added token.
func containsAdded(tok *Tokenizer, s string) bool {
	for content := range tok.addedIDs {
		if strings.Contains(s, content) {
			return true
		}
	}
	return false
}

func idsToBytes(ids []int) []byte {
	raw := make([]byte, 4*len(ids))
	for i, id := range ids {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(int32(id)))
	}
	return raw
}
