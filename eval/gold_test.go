package eval

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/t2m/t2m/data"
)

// sharedData is the seed's published data set, beside the repository.
const sharedData = "../../shared/data/text-to-mongo"

func readShared(t testing.TB, split string) []data.Example {
	t.Helper()
	path := filepath.Join(sharedData, split+".jsonl")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("shared data set not found beside the repository (%v)", err)
	}
	exs, err := data.ReadExamples(path)
	if err != nil {
		t.Fatal(err)
	}
	return exs
}

// TestGoldOutputsPassAllLayers scores every gold output of every split of the
// shared data set: the non-negative examples pass all four layers, negatives
// ({"error": ...}) fail syntax as in the original but count as refusals, and gold
// always matches itself exactly.
func TestGoldOutputsPassAllLayers(t *testing.T) {
	total := 0
	var elapsed time.Duration
	for _, split := range []string{"train", "eval", "held_out"} {
		exs := readShared(t, split)
		raw := make([]string, len(exs))
		for i, ex := range exs {
			raw[i] = string(ex.Output)
		}
		start := time.Now()
		results, rep, err := Score(exs, raw, DefaultHeldOutCollections)
		elapsed += time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		total += len(exs)
		nn := rep.NonNegative
		if nn.Total == 0 || nn.SyntaxPassRate != 1 || nn.OperatorPassRate != 1 || nn.FieldPassRate != 1 || nn.OverallPassRate != 1 {
			t.Errorf("%s: non-negative gold rates %+v, want 100%%", split, nn)
		}
		// The held-out split holds only held-out schemas; the others none.
		g := rep.Generalization
		if split == "held_out" {
			if g == nil || g.Train.Total != 0 || g.HeldOut.Total != len(exs) || g.Gaps != nil || g.Flagged {
				t.Errorf("%s: generalization %+v, want held-out rates only, no gaps, not flagged", split, g)
			}
		} else if g != nil {
			t.Errorf("%s: generalization %+v for a split without held-out schemas", split, g)
		}
		for _, r := range results {
			if !r.ExactMatch || !r.PassedWithRefusals {
				t.Errorf("%s #%d: gold: exact=%v with-refusals=%v", split, r.Index, r.ExactMatch, r.PassedWithRefusals)
			}
			if r.IsNegative && (r.Syntax.Passed || r.PassedAll) {
				t.Errorf("%s #%d: negative gold %s passed syntax; the original fails it (no 'type')", split, r.Index, r.Prediction)
			}
			if !r.IsNegative && !r.PassedAll {
				t.Errorf("%s #%d: gold fails: %+v %+v %+v", split, r.Index, r.Syntax, r.Operators, r.Fields)
			}
		}
	}
	t.Logf("scored %d gold outputs in %v", total, elapsed)
}

// BenchmarkScoreGold scores the 2,138 gold outputs of the shared data set (all
// three splits) per iteration.
func BenchmarkScoreGold(b *testing.B) {
	var exs []data.Example
	for _, split := range []string{"train", "eval", "held_out"} {
		exs = append(exs, readShared(b, split)...)
	}
	raw := make([]string, len(exs))
	for i, ex := range exs {
		raw[i] = string(ex.Output)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := Score(exs, raw, DefaultHeldOutCollections); err != nil {
			b.Fatal(err)
		}
	}
}
