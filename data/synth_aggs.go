package data

import (
	"fmt"
	"slices"
	"strings"
)

// accumulator is a $group accumulator with the words that ask for it.
type accumulator struct {
	op, alias string
	words     []string
}

var accumulators = []accumulator{
	{"$sum", "total", []string{"total", "sum of", "combined"}},
	{"$avg", "average", []string{"average", "mean", "typical"}},
	{"$min", "minimum", []string{"minimum", "lowest", "smallest"}},
	{"$max", "maximum", []string{"maximum", "highest", "largest"}},
}

func (g *synth) acc() accumulator { return accumulators[g.rng.IntN(len(accumulators))] }

// groupStage is {$group: {_id: id, <alias>_<m>: {<op>: "$m"}}}.
func groupStage(id any, a accumulator, m fieldSpec) any {
	return obj("$group", obj("_id", id, a.alias+"_"+m.Name, obj(a.op, "$"+m.Name)))
}

func kindCount(g *synth, in inst) (string, any, bool) {
	alias := g.pick([]string{"total", "count", "n"})
	c := g.coll(in)
	switch g.rng.IntN(3) {
	case 0:
		intent := g.fill([]string{"how many {coll} are there?", "count all {coll}", "what is the number of {coll}?",
			"give me the total count of {coll}"}, "coll", c)
		return intent, aggregate(obj("$count", alias)), true
	case 1:
		f, ok := g.field(in.role("category", "enum"))
		if !ok {
			return "", nil, false
		}
		v := g.value(f)
		intent := g.fill([]string{"how many {coll} have {f} {v}?", "count {coll} where {f} is {v}",
			"what is the number of {coll} with {f} equal to {v}?"}, "coll", c, "f", g.name(f), "v", v)
		return intent, aggregate(obj("$match", obj(f.Name, v)), obj("$count", alias)), true
	}
	ts, ok := g.field(in.role("timestamp"))
	if !ok {
		return "", nil, false
	}
	phrase, from, to := g.dateRange()
	intent := g.fill([]string{"how many {coll} have a {ts} {when}?", "count {coll} with {ts} {when}"},
		"coll", c, "ts", g.name(ts), "when", phrase)
	return intent, aggregate(obj("$match", obj(ts.Name, rangeFilter(from, to))), obj("$count", alias)), true
}

func kindGroupAgg(g *synth, in inst) (string, any, bool) {
	m, ok1 := g.field(in.role("measure"))
	c, ok2 := g.field(in.role("category", "enum"))
	if !ok1 || !ok2 {
		return "", nil, false
	}
	a := g.acc()
	intent := g.fill([]string{"what is the {acc} {m} per {c}?", "{acc} {m} by {c}",
		"for each {c}, compute the {acc} {m}", "break down the {acc} {m} by {c} in {coll}",
		"show the {acc} {m} of {coll} grouped by {c}"},
		"acc", g.pick(a.words), "m", g.name(m), "c", g.name(c), "coll", g.coll(in))
	stages := []any{groupStage("$"+c.Name, a, m)}
	if g.chance(0.3) {
		intent += ", sorted by " + g.name(c)
		stages = append(stages, obj("$sort", obj("_id", num(1))))
	}
	return intent, aggregate(stages...), true
}

func kindGroupCount(g *synth, in inst) (string, any, bool) {
	c, ok := g.field(in.role("category", "enum"))
	if !ok {
		return "", nil, false
	}
	if g.chance(0.5) {
		intent := g.fill([]string{"how many {coll} are there per {c}?", "count {coll} for each {c}",
			"number of {coll} by {c}"}, "coll", g.coll(in), "c", g.name(c))
		return intent, aggregate(obj("$group", obj("_id", "$"+c.Name, "count", obj("$sum", num(1))))), true
	}
	intent := g.fill([]string{"count {coll} by {c}, most common first", "which {c} values occur most often in {coll}?",
		"rank each {c} by how many {coll} it has"}, "coll", g.coll(in), "c", g.name(c))
	return intent, aggregate(obj("$sortByCount", "$"+c.Name)), true
}

func kindFilteredGroup(g *synth, in inst) (string, any, bool) {
	m, ok1 := g.field(in.role("measure"))
	c, f, ok2 := g.two(in.role("category", "enum", "boolean"))
	if !ok1 || !ok2 || c.Role == "boolean" {
		return "", nil, false
	}
	a := g.acc()
	var match any
	var cond string
	if f.Role == "boolean" {
		match, cond = obj(f.Name, true), g.pick([]string{"counting only those that are " + f.Adj, "where " + f.Name + " is true"})
	} else {
		v := g.value(f)
		match, cond = obj(f.Name, v), g.pick([]string{"where " + g.name(f) + " is " + v, "for " + g.name(f) + " = " + v, "restricted to " + g.name(f) + " " + v})
	}
	intent := g.fill([]string{"what is the {acc} {m} per {c} {cond}?", "{acc} {m} by {c}, {cond}",
		"{cond}, show the {acc} {m} for each {c}"},
		"acc", g.pick(a.words), "m", g.name(m), "c", g.name(c), "cond", cond)
	return intent, aggregate(obj("$match", match), groupStage("$"+c.Name, a, m)), true
}

func kindMultiGroup(g *synth, in inst) (string, any, bool) {
	m, ok1 := g.field(in.role("measure"))
	a1, a2, ok2 := g.two(in.role("category", "enum", "boolean"))
	if !ok1 || !ok2 {
		return "", nil, false
	}
	a := g.acc()
	intent := g.fill([]string{"{acc} {m} by {a} and {b}", "group {coll} by {a} and {b} and show the {acc} {m}",
		"for every combination of {a} and {b}, what is the {acc} {m}?"},
		"acc", g.pick(a.words), "m", g.name(m), "a", g.name(a1), "b", g.name(a2), "coll", g.coll(in))
	id := obj(a1.Name, "$"+a1.Name, a2.Name, "$"+a2.Name)
	return intent, aggregate(groupStage(id, a, m)), true
}

func kindTopN(g *synth, in inst) (string, any, bool) {
	m, ok := g.field(in.role("measure"))
	if !ok {
		return "", nil, false
	}
	n := []int{3, 5, 10, 20}[g.rng.IntN(4)]
	dir, words, top := -1, []string{"highest", "largest", "biggest"}, "top"
	if g.chance(0.3) {
		dir, words, top = 1, []string{"lowest", "smallest"}, "bottom"
	}
	c := g.coll(in)
	stages := []any{obj("$sort", obj(m.Name, num(dir))), obj("$limit", num(n))}
	id, hasID := g.field(in.role("identifier"))
	if hasID && g.chance(0.35) {
		intent := g.fill([]string{"list the {id} and {m} of the {n} {coll} with the {w} {m}",
			"show {id} and {m} for the {n} {coll} with the {w} {m}"},
			"id", g.name(id), "m", g.name(m), "n", fmt.Sprint(n), "coll", c, "w", g.pick(words))
		stages = append(stages, obj("$project", obj(id.Name, num(1), m.Name, num(1))))
		return intent, aggregate(stages...), true
	}
	intent := g.fill([]string{"{top} {n} {coll} by {m}", "which {n} {coll} have the {w} {m}?",
		"show the {n} {coll} with the {w} {m}", "get the {n} {w} {m} values in {coll}"},
		"top", top, "n", fmt.Sprint(n), "coll", c, "w", g.pick(words), "m", g.name(m))
	return intent, aggregate(stages...), true
}

func kindDateBucket(g *synth, in inst) (string, any, bool) {
	ts, ok := g.field(in.role("timestamp"))
	if !ok {
		return "", nil, false
	}
	unit, op := "year", "$year"
	switch g.rng.IntN(3) {
	case 1:
		unit, op = "month", "$month"
	case 2:
		unit, op = "day of the week", "$dayOfWeek"
	}
	id := obj(op, "$"+ts.Name)
	sortStage := obj("$sort", obj("_id", num(1)))
	if m, ok := g.field(in.role("measure")); ok && g.chance(0.5) {
		a := g.acc()
		intent := g.fill([]string{"{acc} {m} per {unit} of {ts}", "show the {acc} {m} by {unit}, using {ts}",
			"break down {acc} {m} in {coll} by {unit} of {ts}"},
			"acc", g.pick(a.words), "m", g.name(m), "unit", unit, "ts", g.name(ts), "coll", g.coll(in))
		return intent, aggregate(groupStage(id, a, m), sortStage), true
	}
	intent := g.fill([]string{"count {coll} per {unit} of {ts}", "how many {coll} are there in each {unit}, by {ts}?",
		"number of {coll} by {unit} ({ts})"}, "coll", g.coll(in), "unit", unit, "ts", g.name(ts))
	return intent, aggregate(obj("$group", obj("_id", id, "count", obj("$sum", num(1)))), sortStage), true
}

func kindBucket(g *synth, in inst) (string, any, bool) {
	m, ok := g.field(in.role("measure"))
	if !ok || m.Hi-m.Lo < 4 {
		return "", nil, false
	}
	step := niceStep((m.Hi - m.Lo) / (3 + g.rng.IntN(3)))
	var bounds []any
	var words []string
	b := m.Lo / step * step
	if b > m.Lo {
		b -= step
	}
	for ; ; b += step {
		bounds = append(bounds, num(b))
		words = append(words, fmt.Sprint(b))
		if b >= m.Hi {
			break
		}
	}
	if len(bounds) < 2 {
		return "", nil, false
	}
	intent := g.fill([]string{"bucket {coll} by {m} with boundaries {b}", "how many {coll} fall into each {m} range ({b})?",
		"histogram of {m} in {coll}, edges at {b}"}, "coll", g.coll(in), "m", g.name(m), "b", strings.Join(words, ", "))
	return intent, aggregate(obj("$bucket", obj("groupBy", "$"+m.Name, "boundaries", bounds, "default", "other"))), true
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten (at least 1).
func niceStep(x int) int {
	for p := 1; ; p *= 10 {
		for _, m := range []int{1, 2, 5} {
			if m*p >= x {
				return m * p
			}
		}
	}
}

func kindOrFilter(g *synth, in inst) (string, any, bool) {
	c, ok1 := g.field(in.role("category", "enum"))
	m, ok2 := g.field(in.role("measure"))
	if !ok1 || !ok2 {
		return "", nil, false
	}
	v, op, n := g.value(c), g.pick(cmpOps), g.threshold(m)
	intent := g.fill([]string{"find {coll} where {c} is {v} or {m} is {cmp} {n}",
		"show {coll} that either have {c} {v} or a {m} {cmp} {n}"},
		"coll", g.coll(in), "c", g.name(c), "v", v, "m", g.name(m), "cmp", g.pick(cmpWords[op]), "n", fmt.Sprint(n))
	return intent, find(obj("$or", []any{obj(c.Name, v), obj(m.Name, obj(op, num(n)))})), true
}

func kindAndFilter(g *synth, in inst) (string, any, bool) {
	c, ok1 := g.field(in.role("category", "enum"))
	m, ok2 := g.field(in.role("measure"))
	if !ok1 || !ok2 {
		return "", nil, false
	}
	v, op, n := g.value(c), g.pick(cmpOps), g.threshold(m)
	intent := g.fill([]string{"find {coll} with {c} {v} and {m} {cmp} {n}",
		"show {coll} where {c} is {v} and the {m} is {cmp} {n}", "which {coll} with {c} {v} have a {m} {cmp} {n}?"},
		"coll", g.coll(in), "c", g.name(c), "v", v, "m", g.name(m), "cmp", g.pick(cmpWords[op]), "n", fmt.Sprint(n))
	return intent, find(obj(c.Name, v, m.Name, obj(op, num(n)))), true
}

func kindTextSearch(g *synth, in inst) (string, any, bool) {
	t, ok := g.field(in.role("text"))
	if !ok || len(t.Values) == 0 {
		return "", nil, false
	}
	w := g.value(t)
	intent := g.fill([]string{"find {coll} whose {t} mentions \"{w}\"", "which {coll} have \"{w}\" in the {t}?",
		"search {coll} for {t} containing {w}"}, "coll", g.coll(in), "t", g.name(t), "w", w)
	return intent, find(obj(t.Name, obj("$regex", w))), true
}

func kindDistinct(g *synth, in inst) (string, any, bool) {
	c, ok := g.field(in.role("category", "enum"))
	if !ok {
		return "", nil, false
	}
	intent := g.fill([]string{"list the distinct {c} values in {coll}", "what different {c} values do {coll} have?",
		"show each {c} that appears in {coll} once"}, "c", g.name(c), "coll", g.coll(in))
	return intent, aggregate(obj("$group", obj("_id", "$"+c.Name))), true
}

// negative makes an intent about a field the schema does not have; the gold output is the
// error object the system prompt asks for.
func (g *synth) negative(in inst) (string, any) {
	var phantoms []string
	for _, s := range trainSchemas {
		for _, f := range s.Fields {
			if !in.has(f.Name) && !slices.ContainsFunc(in.spec.Fields, func(own fieldSpec) bool {
				return own.Name == f.Name || slices.Contains(own.Synonyms, f.Name)
			}) {
				phantoms = append(phantoms, f.Name)
			}
		}
	}
	ph := g.pick(phantoms)
	real, _ := g.field(in.fields)
	cat, ok := g.field(in.role("category", "enum"))
	if !ok {
		cat = real
	}
	intent := g.fill([]string{"find {coll} where {ph} is greater than {n}", "what is the average {ph} per {c}?",
		"show {coll} with {ph} equal to {v}", "sort {coll} by {ph} in descending order",
		"how many {coll} have a {ph}?", "group {coll} by {ph} and count them",
		"list the {f} and {ph} of every record in {coll}", "total {ph} by {c}"},
		"coll", g.coll(in), "ph", g.name(fieldSpec{Field: Field{Name: ph}}), "n", fmt.Sprint(10*(1+g.rng.IntN(50))),
		"c", g.name(cat), "v", g.pick([]string{"active", "north", "premium", "A1", "open"}), "f", g.name(real))
	return intent, obj("error", fmt.Sprintf("Field '%s' does not exist in %s", ph, in.spec.Collection))
}
