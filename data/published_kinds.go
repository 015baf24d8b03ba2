package data

import "slices"

// The published style's intent kinds: each returns the base examples of one schema, with the
// published set's templates, in the order the published set generates them.

// pubKind makes the base examples of one kind for a schema (none when the schema lacks the roles).
type pubKind func(g *pubGen, spec *schemaSpec) []*pubCase

var pubKinds = []pubKind{
	pubFilter, pubGroup, pubFilteredGroup, pubTimeRange, pubTopN, pubMultiGroup,
	pubCount, pubExists, pubIn, pubDateBucket, pubProjection, pubFilterProjection,
}

// byRole lists the names of spec's fields of each role in turn (all of the first role, then the next).
func byRole(spec *schemaSpec, roles ...string) []string {
	var out []string
	for _, r := range roles {
		for _, f := range spec.Fields {
			if f.Role == r {
				out = append(out, f.Name)
			}
		}
	}
	return out
}

func fieldOf(spec *schemaSpec, name string) fieldSpec {
	for _, f := range spec.Fields {
		if f.Name == name {
			return f
		}
	}
	panic("published style: no field " + name + " in " + spec.Collection)
}

// filterValue is an enum value of f, or "some_value" for a field without enum values.
func (g *pubGen) filterValue(spec *schemaSpec, f string) string {
	if vals := fieldOf(spec, f).EnumValues; len(vals) > 0 {
		return g.pick(vals)
	}
	return "some_value"
}

func (g *pubGen) acc() accumulator { return accumulators[g.rng.IntN(len(accumulators))] }

// groupOut is {"$group": {"_id": id, <alias>: {<op>: "$<measure>"}}}.
func groupOut(id any, a accumulator, measure string) any {
	return obj("$group", obj("_id", id, a.alias, obj(a.op, "$"+measure)))
}

func pubFilter(g *pubGen, spec *schemaSpec) []*pubCase {
	var out []*pubCase
	for _, f := range byRole(spec, "category", "enum") {
		c := &pubCase{fields: []string{f}, tmpl: g.pick([]string{"Show all {C} where {0} is {v}",
			"Find {C} with {0} equal to {v}", "List {C} that have {0} set to {v}"})}
		if vals := fieldOf(spec, f).EnumValues; len(vals) > 0 {
			c.value = g.pick(vals)
		} else {
			c.sample = true
		}
		c.out = func(c *pubCase, name func(string) string) any {
			v := c.value
			if c.sample {
				v = "sample_" + c.fields[0] // the output keeps the original name
			}
			return find(obj(name(c.fields[0]), v))
		}
		out = append(out, c)
	}
	return out
}

func outGroup(c *pubCase, name func(string) string) any {
	return aggregate(groupOut("$"+name(c.fields[1]), c.acc, name(c.fields[0])))
}

// pubGroupMax caps the single-field groups of one schema: the published schemas have 1-2
// measures, t2m's up to 3, and every (measure, category) pair would make groups 19% of the
// examples instead of the published 12%.
const pubGroupMax = 3

func pubGroup(g *pubGen, spec *schemaSpec) []*pubCase {
	var pairs [][]string
	for _, m := range byRole(spec, "measure") {
		for _, cat := range byRole(spec, "category", "enum") {
			pairs = append(pairs, []string{m, cat})
		}
	}
	if len(pairs) > pubGroupMax {
		keep := g.rng.Perm(len(pairs))[:pubGroupMax]
		slices.Sort(keep) // in the published order
		var kept [][]string
		for _, i := range keep {
			kept = append(kept, pairs[i])
		}
		pairs = kept
	}
	var out []*pubCase
	for _, p := range pairs {
		out = append(out, &pubCase{fields: p, acc: g.acc(), out: outGroup,
			tmpl: g.pick([]string{"What is the {acc} {0} per {1}?", "Calculate the {acc} of {0} grouped by {1}",
				"Show {acc} {0} for each {1}"})})
	}
	return out
}

func pubFilteredGroup(g *pubGen, spec *schemaSpec) []*pubCase {
	ms, cats, filters := byRole(spec, "measure"), byRole(spec, "category", "enum"), byRole(spec, "enum", "category")
	var out []*pubCase
	for range min(3, len(ms)*len(cats)) {
		m, cat, ff := g.pick(ms), g.pick(cats), g.pick(filters)
		for cat == ff && len(cats) > 1 {
			cat = g.pick(cats)
		}
		out = append(out, &pubCase{fields: []string{m, cat, ff}, value: g.filterValue(spec, ff), acc: g.acc(),
			tmpl: g.pick([]string{"What is the {acc} {0} for {2} = {v}, grouped by {1}?", "Show {acc} {0} by {1} where {2} is {v}"}),
			out: func(c *pubCase, name func(string) string) any {
				return aggregate(obj("$match", obj(name(c.fields[2]), c.value)), groupOut("$"+name(c.fields[1]), c.acc, name(c.fields[0])))
			}})
	}
	return out
}

func outTimeRange(c *pubCase, name func(string) string) any {
	m, ts := name(c.fields[0]), name(c.fields[1])
	return find(obj(ts, obj("$gte", obj("$date", c.start), "$lte", obj("$date", c.end))), "projection", obj(m, num(1), ts, num(1)))
}

func pubTimeRange(g *pubGen, spec *schemaSpec) []*pubCase {
	ts, ms := byRole(spec, "timestamp"), byRole(spec, "measure")
	if len(ts) == 0 || len(ms) == 0 {
		return nil
	}
	t, m := g.pick(ts), g.pick(ms)
	return []*pubCase{{fields: []string{m, t}, start: pubRangeStart, end: pubRangeEnd, out: outTimeRange,
		tmpl: g.pick([]string{"Show {0} between {start} and {end}", "Get {0} from {1} ranging {start} to {end}"})}}
}

func pubTopN(g *pubGen, spec *schemaSpec) []*pubCase {
	var out []*pubCase
	for _, m := range byRole(spec, "measure") {
		out = append(out, &pubCase{fields: []string{m}, n: []int{3, 5, 10}[g.rng.IntN(3)],
			tmpl: g.pick([]string{"Top {n} {C} by {0}", "Show the {n} highest {0} in {C}"}),
			out: func(c *pubCase, name func(string) string) any {
				return aggregate(obj("$sort", obj(name(c.fields[0]), num(-1))), obj("$limit", num(c.n)))
			}})
	}
	return out
}

func pubMultiGroup(g *pubGen, spec *schemaSpec) []*pubCase {
	ms, cats := byRole(spec, "measure"), byRole(spec, "category", "enum")
	if len(cats) < 2 || len(ms) == 0 {
		return nil
	}
	m, pair := g.pick(ms), sample(g, cats, 2)
	return []*pubCase{{fields: []string{m, pair[0], pair[1]}, acc: g.acc(),
		tmpl: g.pick([]string{"{acc} of {0} by {1} and {2}", "Group {C} by {1} and {2}, show {acc} {0}"}),
		out: func(c *pubCase, name func(string) string) any {
			a, b := name(c.fields[1]), name(c.fields[2])
			return aggregate(groupOut(obj(a, "$"+a, b, "$"+b), c.acc, name(c.fields[0])))
		}}}
}

func pubCount(g *pubGen, spec *schemaSpec) []*pubCase {
	var out []*pubCase
	for _, f := range byRole(spec, "enum", "boolean") {
		c := &pubCase{fields: []string{f}, out: func(c *pubCase, name func(string) string) any {
			var v any = true // a boolean field (no value)
			if c.value != "" {
				v = c.value
			}
			return aggregate(obj("$match", obj(name(c.fields[0]), v)), obj("$count", "total"))
		}}
		if fieldOf(spec, f).Role == "boolean" {
			c.tmpl = g.pick([]string{"How many {C} have {0} set to true?", "Count {C} where {0} is true"})
		} else {
			c.value = g.filterValue(spec, f)
			c.tmpl = g.pick([]string{"How many {C} have {0} equal to {v}?", "Count {C} where {0} is {v}"})
		}
		out = append(out, c)
	}
	return out
}

func pubExists(g *pubGen, spec *schemaSpec) []*pubCase {
	var cands []string
	for _, f := range spec.Fields {
		if f.Role != "identifier" {
			cands = append(cands, f.Name)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	return []*pubCase{{fields: []string{g.pick(cands)}, tmpl: g.pick([]string{"Which {C} have a {0}?", "Find {C} where {0} exists"}),
		out: func(c *pubCase, name func(string) string) any {
			return find(obj(name(c.fields[0]), obj("$exists", true, "$ne", nil)))
		}}}
}

func pubIn(g *pubGen, spec *schemaSpec) []*pubCase {
	var out []*pubCase
	for _, f := range byRole(spec, "enum") {
		vals := fieldOf(spec, f).EnumValues
		k := 1 + g.rng.IntN(min(3, len(vals)))
		if k < 2 && len(vals) >= 2 {
			k = 2
		}
		out = append(out, &pubCase{fields: []string{f}, list: sample(g, vals, k),
			tmpl: g.pick([]string{"Show {C} where {0} is one of {list}", "Find {C} with {0} in [{list}]"}),
			out: func(c *pubCase, name func(string) string) any {
				in := make([]any, len(c.list))
				for i, v := range c.list {
					in[i] = v
				}
				return find(obj(name(c.fields[0]), obj("$in", in)))
			}})
	}
	return out
}

// pubUnitOps are the date buckets' units and the operators that take them from a date.
var pubUnitOps = map[string]string{"year": "$year", "month": "$month", "day": "$dayOfMonth"}

func pubDateBucket(g *pubGen, spec *schemaSpec) []*pubCase {
	ts, ms := byRole(spec, "timestamp"), byRole(spec, "measure")
	if len(ts) == 0 || len(ms) == 0 {
		return nil
	}
	t, m := g.pick(ts), g.pick(ms)
	return []*pubCase{{fields: []string{m, t}, unit: g.pick([]string{"year", "month", "day"}), acc: g.acc(),
		tmpl: g.pick([]string{"{acc} of {0} by {unit} from {1}", "Show {acc} {0} bucketed by {unit} using {1}"}),
		out: func(c *pubCase, name func(string) string) any {
			id := obj(pubUnitOps[c.unit], "$"+name(c.fields[1]))
			return aggregate(groupOut(id, c.acc, name(c.fields[0])), obj("$sort", obj("_id", num(1))))
		}}}
}

// outProjection is a find with the filter {fields[0]: value} (none when filtered is false) and
// a projection of the other fields.
func outProjection(filtered bool) func(c *pubCase, name func(string) string) any {
	return func(c *pubCase, name func(string) string) any {
		filter, proj := obj(), c.fields
		if filtered {
			filter, proj = obj(name(c.fields[0]), c.value), c.fields[1:]
		}
		var kv []any
		for _, f := range proj {
			kv = append(kv, name(f), num(1))
		}
		return find(filter, "projection", obj(kv...))
	}
}

func pubProjection(g *pubGen, spec *schemaSpec) []*pubCase {
	if len(spec.Fields) < 2 {
		return nil
	}
	n := 2
	if len(spec.Fields) >= 3 {
		n += g.rng.IntN(2)
	}
	var names []string
	for _, f := range spec.Fields {
		names = append(names, f.Name)
	}
	c := &pubCase{fields: sample(g, names, n), out: outProjection(false)}
	if n == 2 {
		c.tmpl = g.pick([]string{"Show {0} and {1} from {C}", "List the {0} and {1} for all {C}", "Get {0} and {1} of each {C}"})
	} else {
		c.tmpl = g.pick([]string{"Show {0}, {1} and {2} from {C}", "List the {0}, {1} and {2} for all {C}", "Get just {0}, {1} and {2} from {C}"})
	}
	return []*pubCase{c}
}

func pubFilterProjection(g *pubGen, spec *schemaSpec) []*pubCase {
	filters := byRole(spec, "enum", "category")
	var others []string
	for _, f := range spec.Fields {
		if f.Role != "enum" && f.Role != "category" {
			others = append(others, f.Name)
		}
	}
	if len(filters) == 0 || len(others) == 0 {
		return nil
	}
	ff := g.pick(filters)
	c := &pubCase{value: g.filterValue(spec, ff), out: outProjection(true)}
	c.fields = append([]string{ff}, sample(g, others, 1+g.rng.IntN(2))...)
	if len(c.fields) == 2 {
		c.tmpl = g.pick([]string{"Show {1} for {C} where {0} is {v}", "Get {1} from {C} with {0} = {v}"})
	} else {
		c.tmpl = g.pick([]string{"Show {1} and {2} for {C} where {0} is {v}", "Find {1} and {2} in {C} with {0} = {v}"})
	}
	return []*pubCase{c}
}
