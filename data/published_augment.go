package data

import (
	"fmt"
	"slices"
	"time"
)

// pubMissingFields are the fields negatives of the published style ask about; no t2m schema
// has one of them (TestPublishedStyleNegatives).
var pubMissingFields = []string{
	"wind_speed", "vat_rate", "coupon_code", "mac_address", "browser_name", "auth_token",
	"gpu_load", "ram_gb", "packet_loss", "pulse_rate", "body_temp", "latitude", "longitude",
	"margin_pct", "rebate_amount", "shoe_size", "floor_number", "serial_no", "color_code", "tax_id",
}

// augment returns the published set's augmented copies of the base examples, in its order:
// renaming passes, negatives, random-date copies of the time ranges, operator subsets.
func (g *pubGen) augment(base []*pubCase) []*pubCase {
	var out []*pubCase
	for range pubRenamePasses {
		for _, c := range base {
			rate := pubRenameRate
			if isHeldOut(c.spec) {
				rate = pubRenameRateHeldOut
			}
			if !g.chance(rate) {
				continue
			}
			if r := g.renames(c.spec); len(r) > 0 {
				cp := *c
				cp.rename = r
				out = append(out, &cp)
			}
		}
	}
	for _, c := range base {
		if g.chance(pubNegativeRate) {
			out = append(out, g.negative(c.spec))
		}
	}
	for range pubDatePasses {
		for _, c := range base {
			if c.start != "" {
				cp := *c
				cp.start, cp.end = g.randomRange()
				out = append(out, &cp)
			}
		}
	}
	for range pubSubsetPasses {
		for _, c := range base {
			if g.chance(pubSubsetRate) {
				cp := *c
				cp.ops = g.withoutTwo(c)
				out = append(out, &cp)
			}
		}
	}
	return out
}

// renames picks 1-2 fields of spec that have synonyms and a synonym for each (one that names no
// other field).
func (g *pubGen) renames(spec *schemaSpec) [][2]string {
	var renameable []fieldSpec
	for _, f := range spec.Fields {
		if len(f.Synonyms) > 0 {
			renameable = append(renameable, f)
		}
	}
	var out [][2]string
	for _, f := range sample(g, renameable, 1+g.rng.IntN(2)) {
		syn := g.pick(f.Synonyms)
		taken := slices.ContainsFunc(spec.Fields, func(o fieldSpec) bool { return o.Name == syn }) ||
			slices.ContainsFunc(out, func(r [2]string) bool { return r[1] == syn })
		if !taken {
			out = append(out, [2]string{f.Name, syn})
		}
	}
	return out
}

// negative is the published set's only negative template, about a field spec lacks.
func (g *pubGen) negative(spec *schemaSpec) *pubCase {
	bad := g.pick(pubMissingFields)
	return &pubCase{spec: spec, tmpl: "Show all {C} where {x} is greater than 100", bad: bad, negative: true, ops: fullOps(),
		out: func(c *pubCase, _ func(string) string) any {
			return obj("error", fmt.Sprintf("Field '%s' does not exist in %s", c.bad, c.spec.Collection))
		}}
}

// randomRange is a random range of 30 to 365 days starting in 2023 or 2024, as the published
// set's dates are written: start of the first day to the last second of the last.
func (g *pubGen) randomRange() (start, end string) {
	from := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, g.rng.IntN(731))
	to := from.AddDate(0, 0, 30+g.rng.IntN(336))
	return from.Format(time.DateOnly) + "T00:00:00Z", to.Format(time.DateOnly) + "T23:59:59Z"
}

// withoutTwo is the full operator lists less two operators c's output does not use.
func (g *pubGen) withoutTwo(c *pubCase) AllowedOps {
	used := map[string]bool{}
	collectOps(c.out(c, c.name), used)
	var unused []string
	for _, op := range slices.Concat(StageOperators, ExpressionOperators) {
		if !used[op] {
			unused = append(unused, op)
		}
	}
	drop := sample(g, unused, 2)
	keep := func(ops []string) []string {
		return slices.DeleteFunc(slices.Clone(ops), func(op string) bool { return slices.Contains(drop, op) })
	}
	return AllowedOps{StageOperators: keep(StageOperators), ExpressionOperators: keep(ExpressionOperators)}
}
