package eval

import (
	"strings"
	"testing"
)

func TestExtractJSON(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"plain object", `{"a": 1}`, `{"a": 1}`},
		{"prose around", "Sure! ```json\n{\"a\": {\"b\": 2}}\n``` done {x}", `{"a": {"b": 2}}`},
		{"first object only", `{"a": 1} {"b": 2}`, `{"a": 1}`},
		{"brace inside string", `x {"a": "}{"} y`, `{"a": "}{"}`},
		{"escaped quote inside string", `{"a": "say \"}\" now"} tail`, `{"a": "say \"}\" now"}`},
		{"escaped backslash ends string", `{"a": "\\"} tail`, `{"a": "\\"}`},
		{"backslash outside string is skipped", `{\"a": 1} }`, `{\"a": 1}`},
		{"unbalanced: to the end", `noise {"a": {"b": 1}`, `{"a": {"b": 1}`},
		{"unbalanced by open string", `{"a": "}`, `{"a": "}`},
		{"no brace: stripped", "  [1, 2]\n", `[1, 2]`},
		{"no brace: python whitespace", "\x1c\u00a0\u3000text\u2028\x1f", "text"},
		{"empty", "", ""},
		{"only closing brace", "}}", "}}"},
		{"non-ASCII kept", `é {"名": "ü"} ß`, `{"名": "ü"}`},
	}
	for _, c := range cases {
		if got := ExtractJSON(c.in); got != c.want {
			t.Errorf("%s: ExtractJSON(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
}

func TestParsePython(t *testing.T) {
	ok := []string{
		`{}`, ` {"a": [1, -2.5e3, true, false, null]} `, `NaN`, `-Infinity`, `[Infinity]`,
		`1e999`, `123456789012345678901234567890`, `"\ud800"`, `"\ud83d\ude00"`, `"\u00e9\/"`,
		"\t\n\r{\"a\":1}\r\n", `{"a": 1, "a": 2}`,
	}
	for _, s := range ok {
		if _, err := ParsePython(s); err != nil {
			t.Errorf("ParsePython(%q) = %v, want success (as json.loads)", s, err)
		}
	}
	bad := []string{
		``, ` `, `{`, `{"a" 1}`, `{"a": 1,}`, `[1,]`, `{'a': 1}`, `01`, `1.`, `.5`, `1e`, `-`,
		`+1`, `nan`, `infinity`, `{"a": 1} x`, `{"a": "b` + "\n" + `"}`, `"\x"`, `"\u12"`, `"\u12G4"`,
		`{"a": 1}}`, "\ufeff{}", "\v{}", `[1 2]`, `{1: 2}`, `tru`, `{"a":}`,
		strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2),
	}
	for _, s := range bad {
		if v, err := ParsePython(s); err == nil {
			t.Errorf("ParsePython(%.40q) = %v, want an error (as json.loads)", s, v)
		}
	}
}

func TestParsePythonDuplicateKeys(t *testing.T) {
	v, err := ParsePython(`{"b": 1, "a": 2, "b": {"c": 3}}`)
	if err != nil {
		t.Fatal(err)
	}
	o := v.(*Object)
	if strings.Join(o.Keys, ",") != "b,a" {
		t.Errorf("keys %v, want [b a]: a duplicate keeps its first position", o.Keys)
	}
	if _, isObj := o.Values[0].(*Object); !isObj {
		t.Errorf("b = %v, want the last value (an object)", o.Values[0])
	}
	// Many keys switch the object to a map index; dedup must keep working.
	var sb strings.Builder
	sb.WriteString("{")
	for i := 0; i < 40; i++ {
		sb.WriteString(`"k` + string(rune('a'+i%20)) + `": ` + string(rune('0'+i%10)) + ",")
	}
	sb.WriteString(`"ka": 7}`)
	v, err = ParsePython(sb.String())
	if err != nil {
		t.Fatal(err)
	}
	o = v.(*Object)
	if len(o.Keys) != 20 || o.Keys[0] != "ka" {
		t.Fatalf("keys %v, want 20 distinct keys starting with ka", o.Keys)
	}
	if got, _ := o.Get("ka"); got != Number("7") {
		t.Errorf("ka = %v, want the last value 7", got)
	}
}

func TestParsePythonSurrogates(t *testing.T) {
	v, _ := ParsePython(`{"\ud800": 1, "\udc00": 2, "\ud83d\ude00": 3}`)
	o := v.(*Object)
	if len(o.Keys) != 3 {
		t.Fatalf("keys %q: two different lone surrogates must stay two keys", o.Keys)
	}
	if o.Keys[2] != "😀" {
		t.Errorf("pair decoded to %q, want 😀", o.Keys[2])
	}
}
