package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// PythonJSON renders a JSON document exactly as Python's
// json.dumps(json.loads(raw), ensure_ascii=False) does, which is how the original
// pipeline serialized gold outputs into completions:
//
//   - separators ", " and ": ", no newlines, object key order kept;
//   - a key that appears twice keeps its first position and its last value (a Python dict);
//   - strings escape only `"`, `\`, \n, \r, \t, \b, \f and other control characters below
//     U+0020 (as \u00XX, lower-case hex); non-ASCII, `<`, `>`, `&`, U+2028/U+2029 are kept as is
//     (unlike Go's encoding/json);
//   - integers (no fraction, no exponent) keep their literal text, except "-0" which Python
//     reads as the int 0;
//   - other numbers are Python floats: 1.0 stays "1.0", 1e5 becomes "100000.0", 1E+2 becomes
//     "100.0", 1e-7 becomes "1e-07", 1e400 becomes "Infinity" (Python's repr rules).
//
// Invalid UTF-8 and lone surrogate escapes become U+FFFD (Python would keep a lone
// surrogate and then fail to encode it).
func PythonJSON(raw []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := parseValue(dec)
	if err != nil {
		return "", fmt.Errorf("python json: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("unexpected data after the top-level value")
		}
		return "", fmt.Errorf("python json: at byte %d: %w", dec.InputOffset(), err)
	}
	var sb strings.Builder
	if err := writePy(&sb, v); err != nil {
		return "", fmt.Errorf("python json: %w", err)
	}
	return sb.String(), nil
}

// pyObject is a JSON object with its keys in first-seen order.
type pyObject struct {
	keys []string
	vals map[string]any
}

// parseValue reads one JSON value from dec: nil, bool, string, json.Number, []any or *pyObject.
func parseValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("at byte %d: %w", dec.InputOffset(), err)
	}
	return valueFrom(dec, tok)
}

func valueFrom(dec *json.Decoder, tok json.Token) (any, error) {
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := &pyObject{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("at byte %d: %w", dec.InputOffset(), err)
				}
				key, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("at byte %d: object key is not a string", dec.InputOffset())
				}
				val, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				if _, seen := obj.vals[key]; !seen {
					obj.keys = append(obj.keys, key)
				}
				obj.vals[key] = val
			}
			if _, err := dec.Token(); err != nil { // the closing '}'
				return nil, fmt.Errorf("at byte %d: %w", dec.InputOffset(), err)
			}
			return obj, nil
		case '[':
			arr := []any{}
			for dec.More() {
				val, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				arr = append(arr, val)
			}
			if _, err := dec.Token(); err != nil { // the closing ']'
				return nil, fmt.Errorf("at byte %d: %w", dec.InputOffset(), err)
			}
			return arr, nil
		}
		return nil, fmt.Errorf("at byte %d: unexpected %q", dec.InputOffset(), rune(t))
	default:
		return t, nil
	}
}

func writePy(sb *strings.Builder, v any) error {
	switch t := v.(type) {
	case nil:
		sb.WriteString("null")
	case bool:
		if t {
			sb.WriteString("true")
		} else {
			sb.WriteString("false")
		}
	case string:
		writePyString(sb, t)
	case json.Number:
		s, err := pyNumber(string(t))
		if err != nil {
			return err
		}
		sb.WriteString(s)
	case []any:
		sb.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				sb.WriteString(", ")
			}
			if err := writePy(sb, e); err != nil {
				return err
			}
		}
		sb.WriteByte(']')
	case *pyObject:
		sb.WriteByte('{')
		for i, k := range t.keys {
			if i > 0 {
				sb.WriteString(", ")
			}
			writePyString(sb, k)
			sb.WriteString(": ")
			if err := writePy(sb, t.vals[k]); err != nil {
				return err
			}
		}
		sb.WriteByte('}')
	default:
		return fmt.Errorf("unexpected value of type %T", v)
	}
	return nil
}

// writePyString writes s quoted with the escapes of Python's json (ensure_ascii=False).
func writePyString(sb *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	sb.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			sb.WriteRune(r) // invalid bytes become U+FFFD
			i += size
			continue
		}
		switch c {
		case '"':
			sb.WriteString(`\"`)
		case '\\':
			sb.WriteString(`\\`)
		case '\n':
			sb.WriteString(`\n`)
		case '\r':
			sb.WriteString(`\r`)
		case '\t':
			sb.WriteString(`\t`)
		case '\b':
			sb.WriteString(`\b`)
		case '\f':
			sb.WriteString(`\f`)
		default:
			if c < 0x20 {
				sb.WriteString(`\u00`)
				sb.WriteByte(hex[c>>4])
				sb.WriteByte(hex[c&0xf])
			} else {
				sb.WriteByte(c)
			}
		}
		i++
	}
	sb.WriteByte('"')
}

// pyNumber converts a JSON number literal to the text Python's json.dumps writes for the
// value json.loads made of it.
func pyNumber(lit string) (string, error) {
	if !strings.ContainsAny(lit, ".eE") {
		if strings.TrimLeft(lit, "-0") == "" { // "-0" (leading zeros are not valid JSON)
			return "0", nil
		}
		return lit, nil
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return "", fmt.Errorf("number %q: %w", lit, err)
	}
	return pyFloatRepr(f), nil
}

// pyFloatRepr is Python's float.__repr__ (as json.dumps uses it): the shortest digits that
// round-trip, in fixed notation when the decimal exponent is in [-4, 16), else "d.ddde±XX".
func pyFloatRepr(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case math.IsNaN(f):
		return "NaN"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // e.g. "-1.2345e+06"
	sign := ""
	if e[0] == '-' {
		sign, e = "-", e[1:]
	}
	mant, expText, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expText)
	digits := strings.Replace(mant, ".", "", 1)
	if exp < -4 || exp >= 16 {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		es := "+"
		if exp < 0 {
			es, exp = "-", -exp
		}
		return fmt.Sprintf("%s%se%s%02d", sign, m, es, exp)
	}
	decpt := exp + 1 // digits before the decimal point
	switch {
	case decpt <= 0:
		return sign + "0." + strings.Repeat("0", -decpt) + digits
	case decpt >= len(digits):
		return sign + digits + strings.Repeat("0", decpt-len(digits)) + ".0"
	default:
		return sign + digits[:decpt] + "." + digits[decpt:]
	}
}
