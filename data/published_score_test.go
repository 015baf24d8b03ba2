package data_test

import (
	"strings"
	"testing"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/eval"
)

// TestPublishedStyleGoldPassesScoring scores every gold output of the published style (several
// seeds) with t2m's own scoring (eval.ScoreExample, what `t2m score` runs): a non-negative passes
// syntax, operators (within its allowed_ops) and fields (of its own schema) and matches itself
// exactly; a negative is the error form, a refusal.
func TestPublishedStyleGoldPassesScoring(t *testing.T) {
	held := map[string]bool{}
	for _, c := range eval.DefaultHeldOutCollections {
		held[c] = true
	}
	for _, seed := range []uint64{1, 42, 101} {
		train, ev, heldOut, err := data.GenerateStyle(seed, data.StylePublished)
		if err != nil {
			t.Fatal(err)
		}
		for name, exs := range map[string][]data.Example{"train": train, "eval": ev, "held_out": heldOut} {
			negatives := 0
			for i, ex := range exs {
				r := eval.ScoreExample(ex, string(ex.Output), held)
				if r.HeldOut != (name == "held_out") {
					t.Errorf("seed %d %s[%d]: collection %s in the wrong split", seed, name, i, ex.Schema.Collection)
				}
				if ex.IsNegative {
					negatives++
					want := `{"error": "Field '`
					if !r.Refusal || r.Syntax.Passed || !strings.HasPrefix(string(ex.Output), want) {
						t.Errorf("seed %d %s[%d] %q: negative gold %s is not the error form", seed, name, i, ex.Intent, ex.Output)
					}
					continue
				}
				if !r.PassedAll || !r.ExactMatch || !r.ValidStages {
					t.Errorf("seed %d %s[%d] %q: gold %s fails: syntax %v operators %+v fields %+v exact %v stages %v",
						seed, name, i, ex.Intent, ex.Output, r.Syntax.Errors, r.Operators, r.Fields, r.ExactMatch, r.ValidStages)
				}
			}
			if negatives == 0 && name != "eval" {
				t.Errorf("seed %d %s: no negatives", seed, name)
			}
		}
	}
}
