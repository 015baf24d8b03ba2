package eval

import (
	"fmt"
	"strconv"
	"strings"
)

// This file is a JSON parser with the semantics of Python's json.loads (the C
// scanner of CPython), which the original harness used. Differences from Go's
// encoding/json that change verdicts:
//   - NaN, Infinity and -Infinity are accepted as numbers;
//   - numbers never overflow (1e999 is a valid float, Python makes it inf);
//   - a duplicate key keeps the position of its first occurrence and the value
//     of its last (dict assignment), so {"$match":1,"$match":2} has ONE key;
//   - lone UTF-16 surrogates in \u escapes are kept distinct (as WTF-8 bytes).
//
// Values are: *Object, []any, string, Number, bool and nil (null).

// Object is a JSON object with its keys in first-occurrence order.
type Object struct {
	Keys   []string
	Values []any
	index  map[string]int // built only for large objects
}

// Number is a JSON number kept as its literal text (or NaN, Infinity, -Infinity).
type Number string

// maxDepth bounds nesting. Python's json.loads raises RecursionError (which the
// original harness does not catch) near depth 1000, so every input the original
// gives a verdict for stays well inside this limit.
const maxDepth = 10000

// Get returns the value of key and whether it is present.
func (o *Object) Get(key string) (any, bool) {
	if o.index != nil {
		i, ok := o.index[key]
		if !ok {
			return nil, false
		}
		return o.Values[i], true
	}
	for i, k := range o.Keys {
		if k == key {
			return o.Values[i], true
		}
	}
	return nil, false
}

// Has reports whether key is present (Python's `key in dict`).
func (o *Object) Has(key string) bool {
	_, ok := o.Get(key)
	return ok
}

// set assigns key like a Python dict: a new key is appended, an existing key
// keeps its position and takes the new value.
func (o *Object) set(key string, v any) {
	if o.index != nil {
		if i, ok := o.index[key]; ok {
			o.Values[i] = v
			return
		}
	} else {
		for i, k := range o.Keys {
			if k == key {
				o.Values[i] = v
				return
			}
		}
	}
	o.Keys = append(o.Keys, key)
	o.Values = append(o.Values, v)
	if o.index == nil && len(o.Keys) > 16 {
		o.index = make(map[string]int, 2*len(o.Keys))
		for i, k := range o.Keys {
			o.index[k] = i
		}
	} else if o.index != nil {
		o.index[key] = len(o.Keys) - 1
	}
}

// SyntaxError is a JSON decoding error at a byte offset, like Python's JSONDecodeError.
type SyntaxError struct {
	Msg    string
	Offset int
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s (at byte %d)", e.Msg, e.Offset) }

// ParsePython decodes s as Python's json.loads would: leading and trailing JSON
// whitespace allowed, any value at top level, nothing after it.
func ParsePython(s string) (any, error) {
	p := &pyParser{s: s}
	p.skipWS()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipWS()
	if p.i != len(p.s) {
		return nil, p.fail("Extra data")
	}
	return v, nil
}

type pyParser struct {
	s string
	i int
}

func (p *pyParser) fail(msg string) error { return &SyntaxError{Msg: msg, Offset: p.i} }

func (p *pyParser) skipWS() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *pyParser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.fail(fmt.Sprintf("nesting deeper than %d levels", maxDepth))
	}
	if p.i >= len(p.s) {
		return nil, p.fail("Expecting value")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		return p.str()
	case strings.HasPrefix(p.s[p.i:], "null"):
		p.i += 4
		return nil, nil
	case strings.HasPrefix(p.s[p.i:], "true"):
		p.i += 4
		return true, nil
	case strings.HasPrefix(p.s[p.i:], "false"):
		p.i += 5
		return false, nil
	case strings.HasPrefix(p.s[p.i:], "NaN"):
		p.i += 3
		return Number("NaN"), nil
	case strings.HasPrefix(p.s[p.i:], "Infinity"):
		p.i += 8
		return Number("Infinity"), nil
	case strings.HasPrefix(p.s[p.i:], "-Infinity"):
		p.i += 9
		return Number("-Infinity"), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return nil, p.fail("Expecting value")
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number follows CPython's _match_number_unicode: an optional '-', then '0' or a
// non-zero digit run, then an optional fraction and exponent that are only taken
// when complete (a dangling '.' or 'e' is left for the caller to reject).
func (p *pyParser) number() (any, error) {
	start := p.i
	j := p.i
	if j < len(p.s) && p.s[j] == '-' {
		j++
	}
	switch {
	case j < len(p.s) && p.s[j] == '0':
		j++
	case j < len(p.s) && p.s[j] >= '1' && p.s[j] <= '9':
		for j < len(p.s) && isDigit(p.s[j]) {
			j++
		}
	default:
		return nil, p.fail("Expecting value")
	}
	if j+1 < len(p.s) && p.s[j] == '.' && isDigit(p.s[j+1]) {
		j += 2
		for j < len(p.s) && isDigit(p.s[j]) {
			j++
		}
	}
	if j < len(p.s) && (p.s[j] == 'e' || p.s[j] == 'E') {
		k := j + 1
		if k < len(p.s) && (p.s[k] == '+' || p.s[k] == '-') {
			k++
		}
		if k < len(p.s) && isDigit(p.s[k]) {
			for k < len(p.s) && isDigit(p.s[k]) {
				k++
			}
			j = k
		}
	}
	p.i = j
	return Number(p.s[start:j]), nil
}

func (p *pyParser) object(depth int) (any, error) {
	p.i++ // '{'
	obj := &Object{}
	p.skipWS()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return obj, nil
	}
	for {
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return nil, p.fail("Expecting property name enclosed in double quotes")
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		p.skipWS()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, p.fail("Expecting ':' delimiter")
		}
		p.i++
		p.skipWS()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		obj.set(key.(string), v)
		p.skipWS()
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			return obj, nil
		}
		if p.i >= len(p.s) || p.s[p.i] != ',' {
			return nil, p.fail("Expecting ',' delimiter")
		}
		p.i++
		p.skipWS()
	}
}

func (p *pyParser) array(depth int) (any, error) {
	p.i++ // '['
	arr := []any{}
	p.skipWS()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return arr, nil
	}
	for {
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		p.skipWS()
		if p.i < len(p.s) && p.s[p.i] == ']' {
			p.i++
			return arr, nil
		}
		if p.i >= len(p.s) || p.s[p.i] != ',' {
			return nil, p.fail("Expecting ',' delimiter")
		}
		p.i++
		p.skipWS()
	}
}

// str decodes a string starting at the opening quote (strict mode: raw control
// characters are errors, as in Python's default).
func (p *pyParser) str() (any, error) {
	p.i++ // opening quote
	var b strings.Builder
	chunk := p.i
	for {
		if p.i >= len(p.s) {
			return nil, p.fail("Unterminated string starting")
		}
		c := p.s[p.i]
		switch {
		case c == '"':
			b.WriteString(p.s[chunk:p.i])
			p.i++
			return b.String(), nil
		case c < 0x20:
			return nil, p.fail("Invalid control character")
		case c == '\\':
			b.WriteString(p.s[chunk:p.i])
			if err := p.escape(&b); err != nil {
				return nil, err
			}
			chunk = p.i
		default:
			p.i++
		}
	}
}

// escape decodes one backslash escape at p.i into b.
func (p *pyParser) escape(b *strings.Builder) error {
	if p.i+1 >= len(p.s) {
		return p.fail("Unterminated string starting")
	}
	c := p.s[p.i+1]
	if r, ok := simpleEscape(c); ok {
		b.WriteByte(r)
		p.i += 2
		return nil
	}
	if c != 'u' {
		return p.fail("Invalid \\escape")
	}
	u, ok := hex4(p.s, p.i+2)
	if !ok {
		return p.fail("Invalid \\uXXXX escape")
	}
	p.i += 6
	if u >= 0xd800 && u <= 0xdbff && p.i+1 < len(p.s) && p.s[p.i] == '\\' && p.s[p.i+1] == 'u' {
		if lo, ok := hex4(p.s, p.i+2); ok && lo >= 0xdc00 && lo <= 0xdfff {
			b.WriteRune(0x10000 + (u-0xd800)<<10 + (lo - 0xdc00))
			p.i += 6
			return nil
		}
		// Python checks the second escape's hex digits only when pairing; an
		// invalid one is reported when it is scanned on its own.
	}
	if u >= 0xd800 && u <= 0xdfff {
		// A lone surrogate: Python keeps it in the str. Keep it distinct as WTF-8.
		b.WriteByte(byte(0xe0 | u>>12))
		b.WriteByte(byte(0x80 | (u>>6)&0x3f))
		b.WriteByte(byte(0x80 | u&0x3f))
		return nil
	}
	b.WriteRune(u)
	return nil
}

// hex4 reads four hex digits at s[i:].
func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	v, err := strconv.ParseUint(s[i:i+4], 16, 32)
	if err != nil || strings.ContainsAny(s[i:i+4], "+-_xX") {
		return 0, false
	}
	return rune(v), true
}

// pyStr renders v the way Python's str() renders a value decoded by json.loads,
// for error reasons that read like the original's ("Invalid type 'None'").
func pyStr(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return pyRepr(v)
}

// pyRepr approximates Python's repr() of a decoded JSON value.
func pyRepr(v any) string {
	switch t := v.(type) {
	case nil:
		return "None"
	case bool:
		if t {
			return "True"
		}
		return "False"
	case Number:
		switch t {
		case "NaN":
			return "nan"
		case "Infinity":
			return "inf"
		case "-Infinity":
			return "-inf"
		}
		return string(t)
	case string:
		if strings.Contains(t, "'") && !strings.Contains(t, `"`) {
			return `"` + t + `"`
		}
		return "'" + strings.ReplaceAll(strings.ReplaceAll(t, `\`, `\\`), "'", `\'`) + "'"
	case []any:
		parts := make([]string, len(t))
		for i, x := range t {
			parts[i] = pyRepr(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case *Object:
		parts := make([]string, len(t.Keys))
		for i, k := range t.Keys {
			parts[i] = pyRepr(k) + ": " + pyRepr(t.Values[i])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}

// simpleEscape maps the character after a backslash to the byte it stands for.
func simpleEscape(c byte) (byte, bool) {
	switch c {
	case '"', '\\', '/':
		return c, true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	}
	return 0, false
}
