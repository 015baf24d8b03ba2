package data

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// pubGenerated is the generated published-style splits of all pubSeeds together.
func pubGenerated(t *testing.T) []Example {
	var gen []Example
	for _, seed := range pubSeeds {
		tr, ev, ho := generatePub(t, seed)
		gen = slices.Concat(gen, tr, ev, ho)
	}
	return gen
}

// pubSets are the published splits together and the generated ones together; without the
// published set the test is skipped.
func pubSets(t *testing.T) map[string][]Example {
	var pub []Example
	for _, split := range []string{"train", "eval", "held_out"} {
		pub = append(pub, readPublished(t, split)...)
	}
	return map[string][]Example{"published": pub, "generated": pubGenerated(t)}
}

// TestPublishedStyleAllowedOps checks the allowed_ops convention on both sets: the full operator
// lists, or (for about a fifth of the non-negative examples) the full lists less exactly two
// operators the gold output does not use; negatives always have the full lists.
func TestPublishedStyleAllowedOps(t *testing.T) {
	for name, exs := range pubSets(t) {
		subsets := 0
		for _, ex := range exs {
			used := map[string]bool{}
			collectOps(parseOutput(t, ex), used)
			var dropped []string
			for _, full := range [][2][]string{{StageOperators, ex.AllowedOps.StageOperators}, {ExpressionOperators, ex.AllowedOps.ExpressionOperators}} {
				if kept := slices.DeleteFunc(slices.Clone(full[0]), func(op string) bool { return !slices.Contains(full[1], op) }); !slices.Equal(kept, full[1]) {
					t.Fatalf("%s %q: allowed_ops %v are not a subset of the full lists in their order", name, ex.Intent, full[1])
				}
				for _, op := range full[0] {
					if !slices.Contains(full[1], op) {
						dropped = append(dropped, op)
					}
				}
			}
			switch {
			case len(dropped) == 0:
			case len(dropped) != 2 || ex.IsNegative:
				t.Errorf("%s %q (negative %v): %d operators dropped %v, want 0 or (non-negatives) 2", name, ex.Intent, ex.IsNegative, len(dropped), dropped)
			case used[dropped[0]] || used[dropped[1]]:
				t.Errorf("%s %q: dropped %v, which the gold output uses", name, ex.Intent, dropped)
			default:
				subsets++
			}
		}
		if share := float64(subsets) / float64(len(exs)); share < 0.15 || share > 0.25 {
			t.Errorf("%s: %.1f%% operator subsets, want about 20%%", name, 100*share)
		}
	}
}

// equalities lists the field: value pairs of an output's filter or $match.
func equalities(o *pyObject) [][2]any {
	var conds []*pyObject
	if f, ok := o.vals["filter"].(*pyObject); ok {
		conds = append(conds, f)
	}
	if p, ok := o.vals["pipeline"].([]any); ok {
		for _, s := range p {
			if m, ok := s.(*pyObject).vals["$match"].(*pyObject); ok {
				conds = append(conds, m)
			}
		}
	}
	var out [][2]any
	for _, c := range conds {
		for _, k := range c.keys {
			if !isObj(c.vals[k]) {
				out = append(out, [2]any{k, c.vals[k]})
			}
		}
	}
	return out
}

// TestPublishedStyleValueConventions checks how an equality's value is chosen, on both sets: an
// enum value for an enum field; otherwise sample_<field> in a plain filter (the intent names the
// field as the schema does, the output keeps the field's original name: the schema's, or one it
// was renamed from) and some_value in a $match or with a projection; true for a boolean.
func TestPublishedStyleValueConventions(t *testing.T) {
	for name, exs := range pubSets(t) {
		for _, ex := range exs {
			o := parseOutput(t, ex)
			for _, eq := range equalities(o) {
				i := slices.IndexFunc(ex.Schema.Fields, func(f Field) bool { return f.Name == eq[0] })
				if i < 0 {
					t.Fatalf("%s %q: filter on %v, not in the schema", name, ex.Intent, eq[0])
				}
				f, v := ex.Schema.Fields[i], fmt.Sprint(eq[1])
				kind := pubKindOf(t, ex)
				switch {
				case f.Type == "bool":
					if eq[1] != true {
						t.Errorf("%s %q: boolean %s = %v, want true", name, ex.Intent, f.Name, eq[1])
					}
				case len(f.EnumValues) > 0:
					if !slices.Contains(f.EnumValues, v) {
						t.Errorf("%s %q: enum %s = %q, not one of its values", name, ex.Intent, f.Name, v)
					}
				case kind == "filter":
					orig, ok := strings.CutPrefix(v, "sample_")
					if !ok || !strings.Contains(ex.Intent, " sample_"+f.Name) {
						t.Errorf("%s %q: %s = %q, want sample_<field> named sample_%s in the intent", name, ex.Intent, f.Name, v, f.Name)
					}
					// The output keeps the original name: the field's own, or (renamed) one that is
					// no longer in the schema; generated, exactly the spec's field at that place.
					wantOrig := orig == f.Name || !slices.ContainsFunc(ex.Schema.Fields, func(g Field) bool { return g.Name == orig })
					if name == "generated" {
						wantOrig = orig == specOf(t, ex).Fields[i].Name
					}
					if !wantOrig {
						t.Errorf("%s %q: %s = %q, want the field's original name", name, ex.Intent, f.Name, v)
					}
				case v != "some_value":
					t.Errorf("%s %q (%s): %s = %q, want some_value", name, ex.Intent, kind, f.Name, v)
				}
			}
		}
	}
}

// TestPublishedStyleRenames checks the generated renaming: 1-2 fields renamed to their synonyms,
// a collection variant in the intent is the collection with a renamed field's original name
// replaced (sensor_readings with reading -> measurement: sensor_measurements), and both variants
// and renamed sample_<field> values occur.
func TestPublishedStyleRenames(t *testing.T) {
	variants, renamedSamples := map[string]bool{}, 0
	for _, ex := range pubGenerated(t) {
		spec := specOf(t, ex)
		coll, renamed := spec.Collection, 0
		for i, f := range ex.Schema.Fields {
			if orig := spec.Fields[i]; f.Name != orig.Name {
				renamed++
				if !slices.Contains(orig.Synonyms, f.Name) {
					t.Errorf("%q: %s renamed to %s, not one of its synonyms", ex.Intent, orig.Name, f.Name)
				}
				coll = strings.ReplaceAll(coll, orig.Name, f.Name)
			}
		}
		if renamed > 2 || (renamed > 0 && ex.IsNegative) {
			t.Errorf("%q: %d fields renamed (negative %v), want at most 2 and none in negatives", ex.Intent, renamed, ex.IsNegative)
		}
		_, _, a := abstractExample(ex, false)
		for _, v := range a.variants {
			variants[v] = true
			if v != coll {
				t.Errorf("%q: collection variant %q, want %q", ex.Intent, v, coll)
			}
		}
		for _, eq := range equalities(parseOutput(t, ex)) {
			if v := fmt.Sprint(eq[1]); strings.HasPrefix(v, "sample_") && v != "sample_"+fmt.Sprint(eq[0]) {
				renamedSamples++ // checked by TestPublishedStyleValueConventions
			}
		}
	}
	if len(variants) < 2 || renamedSamples == 0 {
		t.Errorf("collection variants %v, %d renamed sample values; want both to occur", variants, renamedSamples)
	}
}

// TestPublishedStyleNegatives checks the negatives: the published template, the error naming the
// field and the collection, a field that no t2m schema has under any name.
func TestPublishedStyleNegatives(t *testing.T) {
	known := map[string]bool{}
	for _, s := range slices.Concat(trainSchemas, heldOutSchemas) {
		for _, f := range s.Fields {
			known[f.Name] = true
			for _, syn := range f.Synonyms {
				known[syn] = true
			}
		}
	}
	for _, f := range pubMissingFields {
		if known[f] {
			t.Errorf("negative field %s is a t2m field or synonym", f)
		}
	}
	n := 0
	for _, ex := range pubGenerated(t) {
		if !ex.IsNegative {
			continue
		}
		n++
		var bad string
		if _, err := fmt.Sscanf(ex.Intent, "Show all "+ex.Schema.Collection+" where %s is greater than 100", &bad); err != nil {
			t.Errorf("negative intent %q: %v", ex.Intent, err)
		}
		want := fmt.Sprintf(`{"error": "Field '%s' does not exist in %s"}`, bad, ex.Schema.Collection)
		if string(ex.Output) != want || known[bad] {
			t.Errorf("negative %q: output %s, want %s about a field no schema has", ex.Intent, ex.Output, want)
		}
	}
	if n == 0 {
		t.Error("no negatives")
	}
}
