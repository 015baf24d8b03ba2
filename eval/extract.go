package eval

import (
	"strings"
	"unicode"
)

// ExtractJSON returns the first JSON object of a raw model output, exactly as the
// original harness's extract_json does: from the first '{', track brace depth
// outside strings (a backslash escapes the next character only inside a string;
// outside one it is skipped) and cut at the '}' that closes depth 0. If the braces
// never balance, everything from the first '{' to the end is returned. Without any
// '{', the output is returned with Python-whitespace stripped from both ends.
//
// Scanning bytes is equivalent to scanning Python code points here: '{', '}', '"'
// and '\' are ASCII and never occur inside a multi-byte UTF-8 sequence.
func ExtractJSON(text string) string {
	start := strings.IndexByte(text, '{')
	if start < 0 {
		return strings.TrimFunc(text, pyIsSpace)
	}
	depth := 0
	inString, escaped := false, false
	for i := start; i < len(text); i++ {
		c := text[i]
		if escaped {
			escaped = false
			continue
		}
		switch {
		case c == '\\':
			if inString {
				escaped = true
			}
		case c == '"':
			inString = !inString
		case inString:
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				return text[start : i+1]
			}
		}
	}
	return text[start:]
}

// pyIsSpace is Python's str.isspace for one character: Unicode White_Space plus
// the separators U+001C..U+001F, which Python also strips.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}
