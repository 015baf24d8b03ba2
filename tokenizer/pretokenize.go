package tokenizer

import (
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// splitter cuts normalized text into pre-tokens and appends them to out.
type splitter func(s string, out []string) []string

// qwen2Pattern is the Split regex of Qwen2's tokenizer.json (GPT-4's cl100k pattern with single digits).
const qwen2Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// newSplitter returns the splitter of a Split regex: a hand-written scanner for Qwen2's pattern, which is
// about ten times faster than the backtracking engine, else the regex on regexp2. Tests check the scanner
// against regexp2 on the fixture and by fuzzing.
func newSplitter(expr string) (splitter, error) {
	if expr == qwen2Pattern {
		return splitQwen2, nil
	}
	re, err := regexp2.Compile(expr, regexp2.None)
	if err != nil {
		return nil, err
	}
	return func(s string, out []string) []string { return splitIsolated(re, s, out) }, nil
}

// splitIsolated appends the pieces of s cut by re with HF's "Isolated" behaviour: every match is a piece,
// and so is every stretch of text between matches.
func splitIsolated(re *regexp2.Regexp, s string, out []string) []string {
	// regexp2 works on runes: Index and Length count runes, so keep each rune's byte offset. Invalid UTF-8
	// bytes are one rune (U+FFFD) each, both here and in regexp2.
	runes := make([]rune, 0, len(s))
	offsets := make([]int, 0, len(s)+1)
	for i, r := range s {
		runes = append(runes, r)
		offsets = append(offsets, i)
	}
	offsets = append(offsets, len(s))
	last := 0 // rune index where the next piece starts
	m, err := re.FindRunesMatch(runes)
	for err == nil && m != nil {
		if m.Length > 0 {
			if m.Index > last {
				out = append(out, s[offsets[last]:offsets[m.Index]])
			}
			out = append(out, s[offsets[m.Index]:offsets[m.Index+m.Length]])
			last = m.Index + m.Length
		}
		m, err = re.FindNextMatch(m)
	}
	// err can only be a match timeout, and none is set; keep the rest as one piece either way.
	if last < len(runes) {
		out = append(out, s[offsets[last]:])
	}
	return out
}

// splitQwen2 cuts s as qwen2Pattern does. Every character starts a match of one of its alternatives, so
// there are no gaps between pieces.
func splitQwen2(s string, out []string) []string {
	for i := 0; i < len(s); {
		n := matchQwen2(s[i:])
		out = append(out, s[i:i+n])
		i += n
	}
	return out
}

// Character classes as regexp2 (and Oniguruma, which HF uses) define them: \p{L}, \p{N}, \s.
func isLetter(r rune) bool { return unicode.IsLetter(r) }
func isNumber(r rune) bool { return unicode.IsNumber(r) }
func isSpace(r rune) bool  { return unicode.IsSpace(r) }

// isOther is [^\s\p{L}\p{N}].
func isOther(r rune) bool { return !isSpace(r) && !isLetter(r) && !isNumber(r) }

// matchQwen2 returns the byte length of the match of qwen2Pattern at the start of s (len(s) > 0), trying
// the alternatives in order as the backtracking engine does.
func matchQwen2(s string) int {
	r0, w0 := utf8.DecodeRuneInString(s)

	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if r0 == '\'' {
		if n := contraction(s[1:]); n > 0 {
			return 1 + n
		}
	}

	// [^\r\n\p{L}\p{N}]?\p{L}+
	if isLetter(r0) {
		return w0 + run(s[w0:], isLetter)
	}
	if r0 != '\r' && r0 != '\n' && !isNumber(r0) && w0 < len(s) {
		if r1, w1 := utf8.DecodeRuneInString(s[w0:]); isLetter(r1) {
			return w0 + w1 + run(s[w0+w1:], isLetter)
		}
	}

	// \p{N}
	if isNumber(r0) {
		return w0
	}

	// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
	start := 0
	if r0 == ' ' {
		start = 1
	}
	if start < len(s) {
		if r, w := utf8.DecodeRuneInString(s[start:]); isOther(r) {
			n := start + w
			n += run(s[n:], isOther)
			return n + run(s[n:], isNewline)
		}
	}

	// r0 is whitespace now. Find its run, the last newline in it, and where its last character starts.
	end, lastNewline, lastStart := 0, -1, 0
	for end < len(s) {
		r, w := utf8.DecodeRuneInString(s[end:])
		if !isSpace(r) {
			break
		}
		if isNewline(r) {
			lastNewline = end
		}
		lastStart = end
		end += w
	}
	switch {
	case lastNewline >= 0: // \s*[\r\n]+ : backtracks to the last newline of the run
		return lastNewline + 1
	case end == len(s): // \s+(?!\S) at the end of the text
		return end
	case lastStart > 0: // \s+(?!\S) : the run less its last character, which goes with what follows
		return lastStart
	default: // \s+
		return end
	}
}

func isNewline(r rune) bool { return r == '\r' || r == '\n' }

// run returns the byte length of the longest prefix of s whose characters all satisfy in.
func run(s string, in func(rune) bool) int {
	n := 0
	for n < len(s) {
		r, w := utf8.DecodeRuneInString(s[n:])
		if !in(r) {
			break
		}
		n += w
	}
	return n
}

// contraction returns the byte length of s, D, RE, VE, M, LL or T (any case) at the start of s, or 0.
// Case-insensitive matching folds as Oniguruma does, so "ſ" (U+017F, long s) counts as "s".
func contraction(s string) int {
	if s == "" {
		return 0
	}
	lower := func(i int) byte {
		if i >= len(s) {
			return 0
		}
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		return c
	}
	switch lower(0) {
	case 's', 't', 'm', 'd':
		return 1
	case 'r', 'v':
		if lower(1) == 'e' {
			return 2
		}
	case 'l':
		if lower(1) == 'l' {
			return 2
		}
	}
	if len(s) >= 2 && s[:2] == "\u017f" {
		return 2
	}
	return 0
}
