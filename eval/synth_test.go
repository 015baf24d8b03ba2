package eval

import (
	"testing"

	"github.com/t2m/t2m/data"
)

// TestSyntheticGoldPassesAllLayers scores the gold outputs of t2m's own synthetic
// data (data.Generate(42)): every non-negative example passes all four layers,
// every negative's gold is a refusal, the held-out split holds exactly the
// default held-out collections, and train+held_out scored together yield
// train-schema vs held-out-schema generalization with 100% on non-negatives.
func TestSyntheticGoldPassesAllLayers(t *testing.T) {
	train, evalSplit, heldOut, err := data.Generate(42)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for _, c := range DefaultHeldOutCollections {
		held[c] = true
	}
	for _, ex := range heldOut {
		if !held[ex.Schema.Collection] {
			t.Fatalf("held-out example of collection %q, not a default held-out collection", ex.Schema.Collection)
		}
	}
	for name, exs := range map[string][]data.Example{"train": train, "eval": evalSplit, "held_out": heldOut, "train+held_out": append(append([]data.Example{}, train...), heldOut...)} {
		raw := make([]string, len(exs))
		for i, ex := range exs {
			raw[i] = string(ex.Output)
		}
		results, rep, err := Score(exs, raw, DefaultHeldOutCollections)
		if err != nil {
			t.Fatal(err)
		}
		if rep.NonNegative.Total == 0 || rep.NonNegative.OverallPassRate != 1 || rep.Negatives == 0 {
			t.Errorf("%s: non-negative gold %+v (%d negatives), want 100%% and some negatives", name, rep.NonNegative, rep.Negatives)
		}
		if rep.OverallWithRefusalsRate != 1 || rep.ExactMatchRate != 1 || rep.ValidStagesRate != float64(rep.NonNegative.Total)/float64(rep.Total) {
			t.Errorf("%s: extra columns %+v, want refusals and exact match 100%%, valid stages on every query", name, rep.Rates)
		}
		for _, r := range results {
			if !r.IsNegative && !r.PassedAll {
				t.Errorf("%s #%d (%s): gold fails: %v %+v %+v", name, r.Index, r.Intent, r.Syntax.Errors, r.Operators, r.Fields)
			}
		}
		if name == "train+held_out" {
			g := rep.Generalization
			if g == nil || g.Gaps == nil || g.Train.Total != len(train) || g.HeldOut.Total != len(heldOut) {
				t.Fatalf("%s: generalization %+v, want both sides", name, g)
			}
		}
	}
}
