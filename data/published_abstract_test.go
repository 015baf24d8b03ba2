package data

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// publishedDir is the published data set, ../shared beside the repository as CI checks it out (sharedData,
// as TestReadSharedSplits reads it); without it the test fails rather than skip.
func publishedDir(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(sharedData, "train.jsonl")); err != nil {
		t.Fatalf("published data set: %v (check ../shared out beside the repository)", err)
	}
	return sharedData
}

func readPublished(t testing.TB, split string) []Example {
	t.Helper()
	exs, err := ReadExamples(filepath.Join(publishedDir(t), split+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return exs
}

var (
	absWord  = regexp.MustCompile(`[A-Za-z0-9_:-]+`)
	absDate  = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
	absNum   = regexp.MustCompile(`^\d+$`)
	absError = regexp.MustCompile(`^Field '(.*)' does not exist in (.*)$`)
	// absAccOps and absUnitOps are the accumulator and date-unit words and their operators.
	absAccOps  = map[string]string{"total": "$sum", "average": "$avg", "minimum": "$min", "maximum": "$max"}
	absUnitOps = map[string]string{"day": "$dayOfMonth", "month": "$month", "year": "$year"}
)

// abstracter turns one example into its (intent template, output shape): field names become {F},
// the collection (or a variant of it, collectionVariant) {C}, dates {D}, other numbers {N}, filter
// values {V} (an enum value or the placeholder some_value: which one a field gets is checked by
// TestPublishedStyleValueConventions), sample_<field> placeholders sample_{F} (sample_{X} when the
// field is not in the schema: renamed), the field a negative names {X}, accumulator and date-unit words {A} and {U} (in the
// output too, where the intent's word and the operator agree). Indexed, fields and values are
// numbered by first appearance ({F1}, {V2}), so the shape also says which field goes where.
type abstracter struct {
	ex             Example
	indexed        bool
	names, enums   map[string]bool
	num            map[string]int
	acc, unit, bad string
	alias          string   // the output's $group accumulator key
	variants       []string // collection variants seen in the intent
}

func abstractExample(ex Example, indexed bool) (intent, shape string, a *abstracter) {
	a = &abstracter{ex: ex, indexed: indexed, names: map[string]bool{}, enums: map[string]bool{}, num: map[string]int{}}
	for _, f := range ex.Schema.Fields {
		a.names[f.Name] = true
		for _, v := range f.EnumValues {
			a.enums[v] = true
		}
	}
	var out map[string]any
	if json.Unmarshal(ex.Output, &out) == nil {
		if m := absError.FindStringSubmatch(fmt.Sprint(out["error"])); m != nil {
			a.bad = m[1]
		}
		stages, _ := out["pipeline"].([]any)
		for _, st := range stages {
			group, _ := st.(map[string]any)["$group"].(map[string]any)
			for k := range group {
				if k != "_id" {
					a.alias = k
				}
			}
		}
	}
	intent = a.intent()
	dec := json.NewDecoder(bytes.NewReader(ex.Output))
	dec.UseNumber()
	v, err := parseValue(dec) // ordered, as written
	if err != nil {
		return intent, "unparsable: " + err.Error(), a
	}
	return intent, a.value(v, "top"), a
}

func (a *abstracter) slot(kind, v string) string {
	if !a.indexed {
		return "{" + kind + "}"
	}
	key := kind + ":" + v
	if _, ok := a.num[key]; !ok {
		a.num[key] = len(a.num) + 1
	}
	return fmt.Sprintf("{%s%d}", kind, a.num[key])
}

func (a *abstracter) intent() string {
	s := a.ex.Intent
	locs := absWord.FindAllStringIndex(s, -1)
	var sb strings.Builder
	prev := 0
	for _, l := range locs {
		sb.WriteString(s[prev:l[0]])
		prev = l[1]
		w := s[l[0]:l[1]]
		_, isAcc := absAccOps[w]
		_, isUnit := absUnitOps[w]
		switch {
		case a.bad != "" && w == a.bad:
			w = "{X}"
		case isAcc && (!a.names[w] || (w == a.alias && a.acc == "")):
			// A field named like an accumulator ("total") is one where the output's
			// accumulator key is, the first time the intent says it.
			a.acc, w = w, "{A}"
		case isUnit && !a.names[w]:
			a.unit, w = w, "{U}"
		case a.names[w]:
			w = a.slot("F", w)
		case w == a.ex.Schema.Collection:
			w = "{C}"
		case collectionVariant(w, a.ex.Schema.Collection, a.names):
			a.variants = append(a.variants, w)
			w = "{C}"
		case absDate.MatchString(w):
			w = "{D}"
		case absNum.MatchString(w):
			w = "{N}"
		case a.enums[w] || w == "some_value":
			w = a.slot("V", w)
		case strings.HasPrefix(w, "sample_") && a.names[w[len("sample_"):]]:
			w = "sample_" + a.slot("F", w[len("sample_"):])
		}
		sb.WriteString(w)
	}
	sb.WriteString(s[prev:])
	return sb.String()
}

// collectionVariant reports whether w is coll with one part replaced by a field name: the
// published set renames a field in the whole intent, so sensor_readings with reading renamed to
// sensor_value reads "sensor_sensor_values".
func collectionVariant(w, coll string, names map[string]bool) bool {
	for n := range names {
		for i := strings.Index(w, n); i >= 0; {
			p, s := w[:i], w[i+len(n):]
			if p+s != "" && len(p)+len(s) < len(coll) && strings.HasPrefix(coll, p) && strings.HasSuffix(coll, s) {
				return true
			}
			j := strings.Index(w[i+1:], n)
			if j < 0 {
				break
			}
			i += 1 + j
		}
	}
	return false
}

// value abstracts an output value; ctx is "top" (the output object), "group" (a $group's body) or "".
func (a *abstracter) value(v any, ctx string) string {
	switch t := v.(type) {
	case *pyObject:
		var parts []string
		for _, k := range t.keys {
			key, val := k, t.vals[k]
			switch {
			case ctx == "group" && k != "_id" && k == a.acc && isAccBody(val, absAccOps[k]):
				key, val = "{A}", obj("{A}", val.(*pyObject).vals[absAccOps[k]])
			case a.unit != "" && k == absUnitOps[a.unit]:
				key = "{U}"
			case ctx != "top" && ctx != "group" && !strings.HasPrefix(k, "$") && k != "_id" && a.names[k]:
				key = a.slot("F", k)
			}
			sub := ""
			if k == "$group" {
				sub = "group"
			}
			parts = append(parts, key+": "+a.value(val, sub))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			parts[i] = a.value(e, "")
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case json.Number:
		if s := string(t); s == "-1" || s == "0" || s == "1" {
			return s
		}
		return "{N}"
	case string:
		switch rest := strings.TrimPrefix(t, "sample_"); {
		case strings.HasPrefix(t, "$") && a.names[t[1:]]:
			return `"$` + a.slot("F", t[1:]) + `"`
		case a.enums[t] || t == "some_value":
			return a.slot("V", t)
		case absDate.MatchString(t):
			return "{D}"
		case rest != t && a.names[rest]:
			return `"sample_` + a.slot("F", rest) + `"`
		case rest != t:
			return `"sample_{X}"`
		}
		if m := absError.FindStringSubmatch(t); m != nil && m[2] == a.ex.Schema.Collection && !a.names[m[1]] {
			return `"Field {X} does not exist in {C}"`
		}
		b, _ := json.Marshal(t)
		return string(b)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// isAccBody reports whether v is {op: "$field"}.
func isAccBody(v any, op string) bool {
	o, ok := v.(*pyObject)
	return ok && len(o.keys) == 1 && o.keys[0] == op
}
