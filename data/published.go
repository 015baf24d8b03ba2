package data

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// Generation styles of GenerateStyle.
const (
	// StyleT2M is t2m's own style (Generate): varied phrasings, date words, random operator subsets.
	StyleT2M = "t2m"
	// StylePublished reproduces the published data set's intent templates and output conventions
	// on t2m's schemas (see GenerateStyle).
	StylePublished = "published"
)

// Styles lists the valid styles of GenerateStyle, the default first.
var Styles = []string{StyleT2M, StylePublished}

// Sizes of the published style. The base examples (every schema against every intent kind) are
// multiplied by the published set's augmentations: renaming passes, negatives, random-date copies
// and operator subsets. t2m's schemas have more fields than the published ones (about 18 base
// examples each, against 14), so fewer copies are renamed, and the held-out schemas, a smaller
// share of t2m's base examples than of the published ones, more often; that brings the splits
// near the published 1,544/171/423 (1,500-1,570/166-174/404-427 over seeds 1, 2, 3, 42, 101),
// with ~1.7% negatives and ~20% operator subsets.
const (
	pubRenamePasses      = 6    // passes of field renaming over the base examples
	pubRenameRate        = 0.48 // share of the training schemas' base examples renamed in one pass
	pubRenameRateHeldOut = 0.80 // the same for the held-out schemas
	pubNegativeRate      = 0.09 // share of base examples that also give a negative
	pubDatePasses        = 4    // random-date copies of every time-range base example
	pubSubsetPasses      = 4    // passes of operator subsetting
	pubSubsetRate        = 0.28 // share of base examples copied with 2 unused operators removed
	pubEvalShare         = 0.10
	pubRangeStart        = "2024-01-01T00:00:00Z" // the fixed range of every base time-range example
	pubRangeEnd          = "2024-06-30T23:59:59Z"
)

// GenerateStyle builds a synthetic data set deterministically from seed in one of the Styles:
//
//   - "t2m" (or ""): Generate(seed), byte for byte.
//   - "published": the original project's published conventions on t2m's own schemas. Base examples
//     pair every schema with 12 intent kinds (filters with sample_<field> / some_value / enum values,
//     $in, exists with $ne null, counts, top-N, projections, time ranges with a projection, single,
//     filtered and two-field groups with an accumulator key named total/average/minimum/maximum, and
//     date buckets sorted by _id), phrased in the published templates. Augmentation copies them with
//     1-2 fields renamed to synonyms (a collection name that contains a renamed field's name changes
//     with it in the intent, and a sample_<field> value keeps its original name in the output), with
//     random dates, or with two unused operators removed from allowed_ops (otherwise the full
//     StageOperators and ExpressionOperators lists), and adds negatives "Show all C where X is greater
//     than 100". Held-out examples stay in generation order; train and eval are shuffled 90/10.
//
// An unknown style is an error naming the valid ones.
func GenerateStyle(seed uint64, style string) (train, eval, heldOut []Example, err error) {
	switch style {
	case StyleT2M, "":
		return Generate(seed)
	case StylePublished:
		return generatePublished(seed)
	}
	return nil, nil, nil, fmt.Errorf("unknown data style %q (valid styles: %s)", style, strings.Join(Styles, ", "))
}

// pubCase is one example of the published style before it is rendered: an intent template and the
// original names of the fields it mentions, plus the renaming, dates and operators of its copy.
type pubCase struct {
	spec *schemaSpec
	// tmpl is the intent: {C} collection, {0}..{2} fields, {v} value, {list} $in values, {n} top-N
	// size, {acc} accumulator, {unit} date unit, {start}/{end} range ends, {x} a missing field.
	tmpl   string
	fields []string // original names of {0}, {1}, {2}
	value  string   // {v}: an enum value or "some_value" (unless sample)
	sample bool     // {v} is sample_<fields[0]>: renamed in the intent, original in the output
	list   []string
	n      int
	acc    accumulator
	unit   string
	start  string
	end    string
	bad    string // negatives: the field the schema lacks
	out    func(c *pubCase, name func(string) string) any
	// Set by augmentation.
	rename   [][2]string // original -> synonym, in the order applied
	negative bool
	ops      AllowedOps
}

// name maps an original field name to its name in this copy.
func (c *pubCase) name(orig string) string {
	for _, r := range c.rename {
		if r[0] == orig {
			return r[1]
		}
	}
	return orig
}

// collection is the collection as the intent names it: a renamed field's original name inside it
// is replaced too (sensor_readings with reading -> measurement reads "sensor_measurements").
func (c *pubCase) collection() string {
	s := c.spec.Collection
	for _, r := range c.rename {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}

func (c *pubCase) intent() string {
	v := c.value
	if c.sample {
		v = "sample_" + c.name(c.fields[0])
	}
	kv := []string{"{C}", c.collection(), "{v}", v, "{list}", strings.Join(c.list, ", "), "{n}", strconv.Itoa(c.n),
		"{acc}", c.acc.alias, "{unit}", c.unit, "{start}", c.start, "{end}", c.end, "{x}", c.bad}
	for i, f := range c.fields {
		kv = append(kv, "{"+strconv.Itoa(i)+"}", c.name(f))
	}
	return strings.NewReplacer(kv...).Replace(c.tmpl)
}

// schema is the copy's schema: the spec's fields with this copy's renames.
func (c *pubCase) schema() Schema {
	s := Schema{Collection: c.spec.Collection, Domain: c.spec.Domain}
	for _, f := range c.spec.Fields {
		f.Field.Name = c.name(f.Name)
		s.Fields = append(s.Fields, f.Field)
	}
	return s
}

func (c *pubCase) example() (Example, error) {
	var sb strings.Builder
	if err := writePy(&sb, c.out(c, c.name)); err != nil {
		return Example{}, fmt.Errorf("published-style %s example %q: %w", c.spec.Collection, c.tmpl, err)
	}
	return Example{Schema: c.schema(), AllowedOps: c.ops, Intent: c.intent(), Output: json.RawMessage(sb.String()), IsNegative: c.negative}, nil
}

// pubGen holds the published style's random state.
type pubGen struct {
	rng *rand.Rand
}

func (g *pubGen) pick(xs []string) string { return xs[g.rng.IntN(len(xs))] }

func (g *pubGen) chance(p float64) bool { return g.rng.Float64() < p }

// sample picks k distinct elements of xs in random order.
func sample[T any](g *pubGen, xs []T, k int) []T {
	out := make([]T, 0, k)
	for _, i := range g.rng.Perm(len(xs))[:min(k, len(xs))] {
		out = append(out, xs[i])
	}
	return out
}

func generatePublished(seed uint64) (train, eval, heldOut []Example, err error) {
	g := &pubGen{rng: rand.New(rand.NewPCG(seed, 0x7432_6d70_7562))} // second word: "t2mpub"
	var base []*pubCase
	for _, specs := range [][]schemaSpec{trainSchemas, heldOutSchemas} {
		for i := range specs {
			for _, kind := range pubKinds {
				for _, c := range kind(g, &specs[i]) {
					c.spec, c.ops = &specs[i], fullOps()
					base = append(base, c)
				}
			}
		}
	}
	all := append(slices.Clone(base), g.augment(base)...)
	var rest []Example
	for _, c := range all {
		ex, err := c.example()
		if err != nil {
			return nil, nil, nil, err
		}
		if isHeldOut(c.spec) {
			heldOut = append(heldOut, ex)
		} else {
			rest = append(rest, ex)
		}
	}
	g.rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	nEval := max(1, int(float64(len(rest))*pubEvalShare))
	return rest[nEval:], rest[:nEval], heldOut, nil
}

// isHeldOut reports whether spec is one of the held-out schemas.
func isHeldOut(spec *schemaSpec) bool {
	return slices.ContainsFunc(heldOutSchemas, func(s schemaSpec) bool { return s.Collection == spec.Collection })
}

// fullOps is the published set's allowed_ops: every stage and expression operator.
func fullOps() AllowedOps {
	return AllowedOps{StageOperators: slices.Clone(StageOperators), ExpressionOperators: slices.Clone(ExpressionOperators)}
}
