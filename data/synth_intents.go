package data

import (
	"fmt"
	"strings"
	"time"
)

// intentKind makes one intent and its gold output for a schema instance; ok is false when
// the schema lacks the fields the kind needs.
type intentKind func(g *synth, in inst) (intent string, output any, ok bool)

// intentKinds are drawn uniformly; each has several phrasings.
var intentKinds = []intentKind{
	kindFilterEq, kindFilterCmp, kindFilterBool, kindEnumIn, kindExists, kindProjection,
	kindTimeRange, kindCount, kindGroupAgg, kindGroupCount, kindFilteredGroup, kindMultiGroup,
	kindTopN, kindDateBucket, kindBucket, kindOrFilter, kindAndFilter, kindTextSearch, kindDistinct,
}

// fill replaces {key} placeholders in a template picked from templates.
func (g *synth) fill(templates []string, kv ...string) string {
	s := g.pick(templates)
	for i := 0; i+1 < len(kv); i += 2 {
		s = strings.ReplaceAll(s, "{"+kv[i]+"}", kv[i+1])
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// coll names the collection: its name or its plural noun.
func (g *synth) coll(in inst) string {
	if g.chance(0.6) {
		return in.spec.Collection
	}
	return in.spec.Noun
}

// name names a field: as in the schema, or with spaces for underscores.
func (g *synth) name(f fieldSpec) string {
	if g.chance(0.7) {
		return f.Name
	}
	return strings.ReplaceAll(f.Name, "_", " ")
}

func (g *synth) field(fs []fieldSpec) (fieldSpec, bool) {
	if len(fs) == 0 {
		return fieldSpec{}, false
	}
	return fs[g.rng.IntN(len(fs))], true
}

// two picks two different fields.
func (g *synth) two(fs []fieldSpec) (a, b fieldSpec, ok bool) {
	if len(fs) < 2 {
		return a, b, false
	}
	i := g.rng.IntN(len(fs))
	j := (i + 1 + g.rng.IntN(len(fs)-1)) % len(fs)
	return fs[i], fs[j], true
}

// value picks a sample value of a category, enum or identifier field.
func (g *synth) value(f fieldSpec) string {
	if len(f.EnumValues) > 0 {
		return g.pick(f.EnumValues)
	}
	return g.pick(f.Values)
}

// threshold picks a round number inside a measure's range.
func (g *synth) threshold(f fieldSpec) int {
	n := f.Lo + g.rng.IntN(f.Hi-f.Lo+1)
	for _, step := range []int{10000, 1000, 100, 10} {
		if f.Hi-f.Lo >= 10*step {
			return n / step * step
		}
	}
	return n
}

var cmpWords = map[string][]string{
	"$gt":  {"greater than", "more than", "above", "over", "exceeding"},
	"$gte": {"at least", "no less than", "greater than or equal to"},
	"$lt":  {"less than", "below", "under", "lower than"},
	"$lte": {"at most", "no more than", "up to"},
}

var cmpOps = []string{"$gt", "$gte", "$lt", "$lte"}

func find(filter any, rest ...any) any {
	return obj(append([]any{"type", "find", "filter", filter}, rest...)...)
}

func aggregate(stages ...any) any {
	return obj("type", "aggregate", "pipeline", stages)
}

func kindFilterEq(g *synth, in inst) (string, any, bool) {
	f, ok := g.field(in.role("category", "enum", "identifier"))
	if !ok {
		return "", nil, false
	}
	v := g.value(f)
	intent := g.fill([]string{
		"find {coll} where {f} is {v}", "show all {coll} with {f} equal to {v}",
		"list {coll} whose {f} is {v}", "which {coll} have {f} set to {v}?",
		"get the {coll} with {f} = {v}", "I need every record in {coll} where {f} equals {v}",
	}, "coll", g.coll(in), "f", g.name(f), "v", v)
	return intent, find(obj(f.Name, v)), true
}

func kindFilterCmp(g *synth, in inst) (string, any, bool) {
	f, ok := g.field(in.role("measure"))
	if !ok {
		return "", nil, false
	}
	op, n := g.pick(cmpOps), g.threshold(f)
	intent := g.fill([]string{
		"find {coll} with {f} {cmp} {n}", "show {coll} where {f} is {cmp} {n}",
		"which {coll} have a {f} {cmp} {n}?", "list all {coll} whose {f} is {cmp} {n}",
	}, "coll", g.coll(in), "f", g.name(f), "cmp", g.pick(cmpWords[op]), "n", fmt.Sprint(n))
	return intent, find(obj(f.Name, obj(op, num(n)))), true
}

func kindFilterBool(g *synth, in inst) (string, any, bool) {
	f, ok := g.field(in.role("boolean"))
	if !ok {
		return "", nil, false
	}
	c := g.coll(in)
	if g.chance(0.5) {
		intent := g.fill([]string{"show the {coll} that are {adj}", "list all {coll} that are {adj}",
			"find {coll} where {f} is true", "which {coll} are {adj}?"}, "adj", f.Adj, "coll", c, "f", f.Name)
		return intent, find(obj(f.Name, true)), true
	}
	intent := g.fill([]string{"list {coll} that are not {adj}", "find {coll} where {f} is false",
		"show the {coll} which aren't {adj}"}, "adj", f.Adj, "coll", c, "f", f.Name)
	return intent, find(obj(f.Name, false)), true
}

func kindEnumIn(g *synth, in inst) (string, any, bool) {
	f, ok := g.field(in.role("enum"))
	if !ok || len(f.EnumValues) < 3 {
		return "", nil, false
	}
	k := 2 + g.rng.IntN(len(f.EnumValues)-2)
	perm := g.rng.Perm(len(f.EnumValues))[:k]
	var vals []string
	var arr []any
	for _, i := range perm {
		vals = append(vals, f.EnumValues[i])
		arr = append(arr, f.EnumValues[i])
	}
	list := strings.Join(vals[:k-1], ", ") + " or " + vals[k-1]
	if g.chance(0.65) {
		intent := g.fill([]string{"find {coll} whose {f} is {list}", "show {coll} with {f} in ({csv})",
			"which {coll} have a {f} of {list}?", "list {coll} where {f} is one of {csv}"},
			"coll", g.coll(in), "f", g.name(f), "list", list, "csv", strings.Join(vals, ", "))
		return intent, find(obj(f.Name, obj("$in", arr))), true
	}
	intent := g.fill([]string{"find {coll} whose {f} is not {list}", "show {coll} excluding {f} {csv}",
		"list {coll} where {f} is none of {csv}"},
		"coll", g.coll(in), "f", g.name(f), "list", list, "csv", strings.Join(vals, ", "))
	return intent, find(obj(f.Name, obj("$nin", arr))), true
}

func kindExists(g *synth, in inst) (string, any, bool) {
	f, ok := g.field(in.role("measure", "text", "category", "timestamp"))
	if !ok {
		return "", nil, false
	}
	if g.chance(0.6) {
		intent := g.fill([]string{"which {coll} have a {f}?", "find {coll} where {f} is set",
			"show {coll} that have a value for {f}", "list {coll} where the {f} field exists"},
			"coll", g.coll(in), "f", g.name(f))
		return intent, find(obj(f.Name, obj("$exists", true))), true
	}
	intent := g.fill([]string{"find {coll} missing a {f}", "which {coll} have no {f} field?",
		"list {coll} without any {f}"}, "coll", g.coll(in), "f", g.name(f))
	return intent, find(obj(f.Name, obj("$exists", false))), true
}

func kindProjection(g *synth, in inst) (string, any, bool) {
	a, b, ok := g.two(in.fields)
	if !ok {
		return "", nil, false
	}
	proj := obj(a.Name, num(1), b.Name, num(1))
	if f, ok := g.field(in.role("category", "enum")); ok && f.Name != a.Name && f.Name != b.Name && g.chance(0.5) {
		v := g.value(f)
		intent := g.fill([]string{"get the {a} and {b} of {coll} where {f} is {v}",
			"show only {a} and {b} for {coll} with {f} {v}"},
			"a", g.name(a), "b", g.name(b), "coll", g.coll(in), "f", g.name(f), "v", v)
		return intent, find(obj(f.Name, v), "projection", proj), true
	}
	intent := g.fill([]string{"show the {a} and {b} of all {coll}", "list {a} and {b} for every record in {coll}",
		"return just {a} and {b} from {coll}", "get {a}, {b} of each of the {coll}"},
		"a", g.name(a), "b", g.name(b), "coll", g.coll(in))
	return intent, find(obj(), "projection", proj), true
}

// dateRange picks a period and phrases it; from or to may be zero (open range).
func (g *synth) dateRange() (phrase string, from, to time.Time) {
	y := 2022 + g.rng.IntN(4)
	format := g.rng.IntN(3) // one date format per phrase
	day := func(t time.Time) string {
		switch format {
		case 0:
			return t.Format("2006-01-02")
		case 1:
			return t.Format("January 2, 2006")
		}
		return t.Format("2 Jan 2006")
	}
	randDay := func() time.Time {
		return time.Date(y, time.Month(1+g.rng.IntN(12)), 1+g.rng.IntN(28), 0, 0, 0, 0, time.UTC)
	}
	switch g.rng.IntN(6) {
	case 0:
		from = time.Date(y, time.Month(1+g.rng.IntN(12)), 1, 0, 0, 0, 0, time.UTC)
		return g.pick([]string{"in ", "during "}) + from.Format("January 2006"), from, from.AddDate(0, 1, 0)
	case 1:
		q := g.rng.IntN(4)
		from = time.Date(y, time.Month(1+3*q), 1, 0, 0, 0, 0, time.UTC)
		return fmt.Sprintf("in Q%d %d", q+1, y), from, from.AddDate(0, 3, 0)
	case 2:
		from = time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
		return g.pick([]string{"in ", "during "}) + fmt.Sprint(y), from, from.AddDate(1, 0, 0)
	case 3:
		from = randDay()
		last := from.AddDate(0, 0, 7+g.rng.IntN(120))
		return "between " + day(from) + " and " + day(last), from, last.AddDate(0, 0, 1)
	case 4:
		from = randDay()
		return g.pick([]string{"since ", "on or after "}) + day(from), from, time.Time{}
	}
	to = randDay()
	return "before " + day(to), time.Time{}, to
}

func dateValue(t time.Time) any { return obj("$date", t.Format("2006-01-02T15:04:05Z")) }

// rangeFilter is {$gte: from, $lt: to} without the open ends.
func rangeFilter(from, to time.Time) any {
	o := obj()
	if !from.IsZero() {
		o = obj("$gte", dateValue(from))
	}
	if !to.IsZero() {
		o.keys = append(o.keys, "$lt")
		o.vals["$lt"] = dateValue(to)
	}
	return o
}

func kindTimeRange(g *synth, in inst) (string, any, bool) {
	ts, ok := g.field(in.role("timestamp"))
	if !ok {
		return "", nil, false
	}
	phrase, from, to := g.dateRange()
	intent := g.fill([]string{"find {coll} with {ts} {when}", "show {coll} whose {ts} falls {when}",
		"which {coll} have a {ts} {when}?", "list all {coll} {when} by {ts}", "get {coll} where {ts} is {when}"},
		"coll", g.coll(in), "ts", g.name(ts), "when", phrase)
	return intent, find(obj(ts.Name, rangeFilter(from, to))), true
}
