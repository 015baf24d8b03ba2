package eval

import (
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
)

// Canonical renders a decoded value as canonical JSON for the exact-match column:
// object keys sorted, no whitespace, strings with only '"', '\\' and control
// characters escaped (other bytes kept as they are), numbers by value: an integer
// literal as its decimal digits, any other number as float64, integral values in
// integer digits and others in the shortest float text, so 1, 1.0 and 1e0 are
// equal as in Python.
func Canonical(v any) string {
	var b strings.Builder
	writeCanonical(&b, v)
	return b.String()
}

func writeCanonical(b *strings.Builder, v any) {
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(t))
	case Number:
		b.WriteString(canonicalNumber(t))
	case string:
		writeCanonicalString(b, t)
	case []any:
		b.WriteByte('[')
		for i, x := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCanonical(b, x)
		}
		b.WriteByte(']')
	case *Object:
		idx := make([]int, len(t.Keys))
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(i, j int) bool { return t.Keys[idx[i]] < t.Keys[idx[j]] })
		b.WriteByte('{')
		for n, i := range idx {
			if n > 0 {
				b.WriteByte(',')
			}
			writeCanonicalString(b, t.Keys[i])
			b.WriteByte(':')
			writeCanonical(b, t.Values[i])
		}
		b.WriteByte('}')
	}
}

func canonicalNumber(n Number) string {
	s := string(n)
	switch s {
	case "NaN", "Infinity", "-Infinity":
		return s
	}
	if !strings.ContainsAny(s, ".eE") {
		if i, ok := new(big.Int).SetString(s, 10); ok {
			return i.String()
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil { // out of range: Python makes it ±inf
		if strings.HasPrefix(s, "-") {
			return "-Infinity"
		}
		return "Infinity"
	}
	if f == math.Trunc(f) && !math.IsInf(f, 0) {
		i, _ := big.NewFloat(f).Int(nil)
		return i.String()
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func writeCanonicalString(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}
