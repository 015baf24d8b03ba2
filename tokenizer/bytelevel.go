package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// byteToChar is GPT-2's byte-level alphabet, which HF's ByteLevel uses: printable Latin-1 bytes stand for
// themselves, the other 68 bytes (controls, space, 0x7F-0xA0, 0xAD) for U+0100 onwards, in byte order.
// So " " is "Ġ" (U+0120) and "\n" is "Ċ" (U+010A).
var byteToChar = func() [256]rune {
	var table [256]rune
	next := rune(256)
	for b := range 256 {
		printable := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
		if printable {
			table[b] = rune(b)
		} else {
			table[b] = next
			next++
		}
	}
	return table
}()

// initBytes fills the byte <-> symbol tables from the vocabulary.
func (t *Tokenizer) initBytes() {
	t.charToByte = make(map[rune]byte, 256)
	for b := range 256 {
		c := byteToChar[b]
		t.charToByte[c] = byte(b)
		t.byteIDs[b] = -1
		if id, ok := t.vocab[string(c)]; ok {
			t.byteIDs[b] = id
		}
	}
}

// lossyUTF8 converts bytes to a string, replacing each maximal invalid subsequence with one U+FFFD, as
// Rust's String::from_utf8_lossy (and so HF's ByteLevel decoder) does. Go's own conversions differ: a
// range loop yields one U+FFFD per byte, strings.ToValidUTF8 one per run.
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r != utf8.RuneError || size > 1 {
			sb.Write(b[:size])
			b = b[size:]
			continue
		}
		sb.WriteRune(utf8.RuneError)
		b = b[invalidPrefix(b):]
	}
	return sb.String()
}

// invalidPrefix returns how many bytes at the start of b, which does not begin with a valid UTF-8
// sequence, form one "maximal subpart of an ill-formed subsequence" (Unicode ch. 3, U+FFFD substitution):
// the longest prefix that could start a valid sequence, or 1 byte.
func invalidPrefix(b []byte) int {
	lo, hi := byte(0x80), byte(0xBF) // allowed range of the second byte
	var width int
	switch c := b[0]; {
	case c >= 0xC2 && c <= 0xDF:
		width = 2
	case c == 0xE0:
		width, lo = 3, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		width = 3
	case c == 0xED:
		width, hi = 3, 0x9F
	case c == 0xF0:
		width, lo = 4, 0x90
	case c >= 0xF1 && c <= 0xF3:
		width = 4
	case c == 0xF4:
		width, hi = 4, 0x8F
	default:
		return 1
	}
	n := 1
	for ; n < width && n < len(b); n++ {
		if n == 1 && (b[n] < lo || b[n] > hi) {
			break
		}
		if n > 1 && (b[n] < 0x80 || b[n] > 0xBF) {
			break
		}
	}
	return n
}
