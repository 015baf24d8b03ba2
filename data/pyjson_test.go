package data

import (
	"strings"
	"testing"
)

// The wants below were produced by CPython 3.11: json.dumps(json.loads(in), ensure_ascii=False).
func TestPythonJSON(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"a": 1, "b": [1.0, 1e5, 1E+2, -0, -0.0, 0.1, 1e16, 1e15, 123456789012345678, 0.0001, 0.00001, 1.5e-7, 2.5E300, 1e400, -1e400, 1e-400, 3.14159265358979323846]}`,
			`{"a": 1, "b": [1.0, 100000.0, 100.0, 0, -0.0, 0.1, 1e+16, 1000000000000000.0, 123456789012345678, 0.0001, 1e-05, 1.5e-07, 2.5e+300, Infinity, -Infinity, 0.0, 3.141592653589793]}`},
		{`{"k":"<a>&b \u2028\u2029 é 日本 \u0001\u001f\u007f \"q\" \\ \/ \n\r\t\b\f"}`,
			"{\"k\": \"<a>&b \u2028\u2029 é 日本 \\u0001\\u001f\x7f \\\"q\\\" \\\\ / \\n\\r\\t\\b\\f\"}"},
		{`{"a":1,"b":2,"a":3}`, `{"a": 3, "b": 2}`},
		{`[]`, `[]`},
		{`{}`, `{}`},
		{`[{},[],null,true,false]`, `[{}, [], null, true, false]`},
		{`  {"x" : { "y" :[ 1 ,2 ] } } `, `{"x": {"y": [1, 2]}}`},
		{`"\ud83d\ude00"`, `"😀"`},
		{`12.50`, `12.5`},
		{`-12E-2`, `-0.12`},
		{`{"type": "find", "filter": {"$or": [{"a": {"$gte": 10}}, {"b": "x"}]}}`,
			`{"type": "find", "filter": {"$or": [{"a": {"$gte": 10}}, {"b": "x"}]}}`},
	}
	for _, c := range cases {
		got, err := PythonJSON([]byte(c.in))
		if err != nil {
			t.Errorf("PythonJSON(%s): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("PythonJSON(%s)\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

func TestPythonJSONRejectsBadInput(t *testing.T) {
	for _, in := range []string{``, `{`, `{"a" 1}`, `{"a":1,}`, `[1,]`, `{1:2}`, `{"a":1} x`, `{"a":1}{}`, `01`, `nul`} {
		if got, err := PythonJSON([]byte(in)); err == nil {
			t.Errorf("PythonJSON(%q) = %q, want an error", in, got)
		}
	}
}

func FuzzPythonJSON(f *testing.F) {
	for _, s := range []string{`{"a": [1, 2.5, "x"]}`, `"\u0000"`, `1e999`, `{"a":{"a":{}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := PythonJSON(b)
		if err != nil {
			return
		}
		// Python's output is itself JSON that renders to the same text.
		again, err := PythonJSON([]byte(out))
		if err != nil && !containsNonFinite(out) {
			t.Fatalf("output %q of %q does not parse: %v", out, b, err)
		}
		if err == nil && again != out {
			t.Fatalf("not a fixed point: %q -> %q", out, again)
		}
	})
}

func containsNonFinite(s string) bool {
	return strings.Contains(s, "Infinity") || strings.Contains(s, "NaN")
}
