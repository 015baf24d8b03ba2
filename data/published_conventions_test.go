package data

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// parseOutput is an example's output as an ordered value.
func parseOutput(t testing.TB, ex Example) *pyObject {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(ex.Output))
	dec.UseNumber()
	v, err := parseValue(dec)
	o, ok := v.(*pyObject)
	if err != nil || !ok {
		t.Fatalf("%q: output %s: %v", ex.Intent, ex.Output, err)
	}
	return o
}

// pubKindOf names the intent kind of an example from its output's shape.
func pubKindOf(t testing.TB, ex Example) string {
	o := parseOutput(t, ex)
	if o.vals["error"] != nil {
		return "negative"
	}
	if o.vals["type"] == "find" {
		f := o.vals["filter"].(*pyObject)
		if o.vals["projection"] != nil {
			switch {
			case len(f.keys) == 0:
				return "projection"
			case isObj(f.vals[f.keys[0]]):
				return "time_range"
			}
			return "filter_projection"
		}
		if v, ok := f.vals[f.keys[0]].(*pyObject); ok {
			return map[bool]string{true: "exists", false: "in"}[v.vals["$exists"] != nil]
		}
		return "filter"
	}
	var stages []string
	for _, s := range o.vals["pipeline"].([]any) {
		stages = append(stages, s.(*pyObject).keys[0])
	}
	switch strings.Join(stages, " ") {
	case "$sort $limit":
		return "top_n"
	case "$match $count":
		return "count"
	case "$match $group":
		return "filtered_group"
	case "$group $sort":
		return "date_bucket"
	case "$group":
		if isObj(o.vals["pipeline"].([]any)[0].(*pyObject).vals["$group"].(*pyObject).vals["_id"]) {
			return "multi_group"
		}
		return "group"
	}
	return "unknown " + strings.Join(stages, " ")
}

func isObj(v any) bool { _, ok := v.(*pyObject); return ok }

func kindShares(t testing.TB, exs []Example) map[string]float64 {
	m := map[string]float64{}
	for _, ex := range exs {
		m[pubKindOf(t, ex)] += 1 / float64(len(exs))
	}
	return m
}

// TestPublishedStyleSplits compares the splits with the published ones: sizes within 10%, the
// negative rate, the held-out collections, and each kind's share within 6 points (train and eval,
// a random 10%, together; held_out apart).
func TestPublishedStyleSplits(t *testing.T) {
	want := map[string]int{"train": 1544, "eval": 171, "held_out": 423}
	pubTrain := append(readPublished(t, "train"), readPublished(t, "eval")...)
	pubShares := []map[string]float64{kindShares(t, pubTrain), kindShares(t, readPublished(t, "held_out"))}
	for _, seed := range pubSeeds {
		tr, ev, ho := generatePub(t, seed)
		negatives, total := 0, 0
		for split, exs := range map[string][]Example{"train": tr, "eval": ev, "held_out": ho} {
			if n := len(exs); math.Abs(float64(n-want[split])) > 0.1*float64(want[split]) {
				t.Errorf("seed %d %s: %d examples, want about %d", seed, split, n, want[split])
			}
			for _, ex := range exs {
				total++
				if ex.IsNegative {
					negatives++
				}
				if spec := specOf(t, ex); isHeldOut(spec) != (split == "held_out") {
					t.Errorf("seed %d %s: example of %s", seed, split, ex.Schema.Collection)
				}
			}
		}
		for i, exs := range [][]Example{append(tr, ev...), ho} {
			got, name := kindShares(t, exs), []string{"train+eval", "held_out"}[i]
			for kind, p := range pubShares[i] {
				if math.Abs(got[kind]-p) > 0.06 {
					t.Errorf("seed %d %s: kind %s is %.1f%% of the examples, published %.1f%%", seed, name, kind, 100*got[kind], 100*p)
				}
			}
			if len(got) != len(pubShares[i]) {
				t.Errorf("seed %d %s: kinds %v, published %v", seed, name, got, pubShares[i])
			}
		}
		if rate := float64(negatives) / float64(total); rate < 0.01 || rate > 0.025 {
			t.Errorf("seed %d: negative rate %.2f%%, published 1.6%%", seed, 100*rate)
		}
	}
}

// specOf is the schema spec of an example's collection.
func specOf(t testing.TB, ex Example) *schemaSpec {
	t.Helper()
	for _, specs := range [][]schemaSpec{trainSchemas, heldOutSchemas} {
		for i := range specs {
			if specs[i].Collection == ex.Schema.Collection {
				return &specs[i]
			}
		}
	}
	t.Fatalf("no schema spec for collection %q", ex.Schema.Collection)
	return nil
}

// TestPublishedStyleDates checks the time ranges on both sets: $gte the start of a day and $lte
// the last second of a later one, 30 to 365 days apart, in the intent in that order.
func TestPublishedStyleDates(t *testing.T) {
	for name, exs := range pubSets(t) {
		ranges := 0
		for _, ex := range exs {
			if pubKindOf(t, ex) != "time_range" {
				continue
			}
			ranges++
			f := parseOutput(t, ex).vals["filter"].(*pyObject)
			r := f.vals[f.keys[0]].(*pyObject)
			if !slices.Equal(r.keys, []string{"$gte", "$lte"}) {
				t.Fatalf("%s %q: range %v, want $gte and $lte", name, ex.Intent, r.keys)
			}
			from := r.vals["$gte"].(*pyObject).vals["$date"].(string)
			to := r.vals["$lte"].(*pyObject).vals["$date"].(string)
			start, err1 := time.Parse(time.RFC3339, from)
			end, err2 := time.Parse(time.RFC3339, to)
			days := end.Sub(start).Hours() / 24
			if err1 != nil || err2 != nil || !strings.HasSuffix(from, "T00:00:00Z") || !strings.HasSuffix(to, "T23:59:59Z") ||
				days < 30 || days > 366 || !strings.Contains(ex.Intent, from+" and "+to) && !strings.Contains(ex.Intent, from+" to "+to) {
				t.Errorf("%s %q: range %s to %s (%.0f days)", name, ex.Intent, from, to, days)
			}
		}
		if ranges == 0 {
			t.Errorf("%s: no time ranges", name)
		}
	}
}

// TestPublishedStyleFilteredGroups checks that a filtered group filters on the field it groups
// by only where the schema has a single category or enum field, on both sets.
func TestPublishedStyleFilteredGroups(t *testing.T) {
	for name, exs := range pubSets(t) {
		for _, ex := range exs {
			if pubKindOf(t, ex) != "filtered_group" {
				continue
			}
			p := parseOutput(t, ex).vals["pipeline"].([]any)
			match, group := p[0].(*pyObject).vals["$match"].(*pyObject), p[1].(*pyObject).vals["$group"].(*pyObject)
			cats := 0
			for _, f := range ex.Schema.Fields {
				if f.Role == "category" || f.Role == "enum" {
					cats++
				}
			}
			if group.vals["_id"] == "$"+match.keys[0] && cats > 1 {
				t.Errorf("%s %q: groups by the field it filters on, with %d category and enum fields", name, ex.Intent, cats)
			}
		}
	}
}
