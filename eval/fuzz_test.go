package eval

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/t2m/t2m/data"
)

// fuzzSeeds are model outputs worth mutating from: gold-like queries, prose,
// unbalanced braces, escapes, Python-only literals and deep nesting.
var fuzzSeeds = []string{
	`{"type": "find", "filter": {"status": "active"}}`,
	"Here is the query:\n```json\n{\"type\": \"aggregate\", \"pipeline\": [{\"$group\": {\"_id\": \"$dept\", \"n\": {\"$sum\": 1}}}]}\n```",
	`{"type": "aggregate", "pipeline": [{"$match": {"ts": {"$gte": {"$date": "2024-01-01"}}}}, {"$project": {"r": "$$ROOT"}}]`,
	`{"a": "\"}\\", "b": NaN, "c": -Infinity, "d": 1e999, "e": "\ud800"}`,
	`{"error": "field not in schema"}`,
	`{{{{"":[[[[`,
	"\x00\xff\xfe{\"\x80\":1}",
	strings.Repeat("[", 50) + strings.Repeat("]", 50),
}

// fuzzExample is a small example to score arbitrary outputs against.
func fuzzExample() data.Example {
	return data.Example{
		Schema: data.Schema{Collection: "staff", Domain: "hr", Fields: []data.Field{
			{Name: "dept", Type: "string"}, {Name: "salary", Type: "double"}, {Name: "ts", Type: "date"}, {Name: "status", Type: "string"},
		}},
		AllowedOps: data.AllowedOps{
			StageOperators:      []string{"$match", "$group", "$project", "$sort"},
			ExpressionOperators: []string{"$sum", "$gte", "$avg"},
		},
		Intent: "fuzz",
		Output: json.RawMessage(`{"type": "find", "filter": {"status": "active"}}`),
	}
}

// FuzzExtractJSON checks the extractor never panics and returns either a
// substring starting at the first '{' or the whitespace-stripped input.
func FuzzExtractJSON(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := ExtractJSON(s)
		i := strings.IndexByte(s, '{')
		if i < 0 {
			if got != strings.TrimFunc(s, pyIsSpace) {
				t.Fatalf("no '{': got %q", got)
			}
			return
		}
		if !strings.HasPrefix(s[i:], got) || !strings.HasPrefix(got, "{") {
			t.Fatalf("ExtractJSON(%q) = %q, not a prefix of the text from the first '{'", s, got)
		}
		if ExtractJSON(got) != got {
			t.Fatalf("not idempotent on %q", got)
		}
	})
}

// FuzzScoreExample runs the whole per-example scorer on arbitrary bytes: it never
// panics, the overall verdict is the conjunction of the three layers, layers 2
// and 3 never pass without layer 1, and the result always encodes as JSON.
func FuzzScoreExample(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	ex := fuzzExample()
	held := map[string]bool{"staff": true}
	f.Fuzz(func(t *testing.T, raw string) {
		r := ScoreExample(ex, raw, held)
		if r.PassedAll != (r.Syntax.Passed && r.Operators.Passed && r.Fields.Passed) {
			t.Fatalf("passed_all %v inconsistent with %+v", r.PassedAll, r)
		}
		if !r.Syntax.Passed && (r.Operators.Passed || r.Fields.Passed || r.ValidStages) {
			t.Fatalf("a layer passed without syntax: %+v", r)
		}
		if r.Syntax.Passed == (len(r.Syntax.Errors) > 0) {
			t.Fatalf("syntax passed=%v with errors %q", r.Syntax.Passed, r.Syntax.Errors)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatalf("result does not encode: %v", err)
		}
	})
}
