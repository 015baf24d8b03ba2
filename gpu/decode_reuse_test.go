//go:build t2mcuda

package gpu

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/internal/numtest"
)

// TestGPUPrefixReuse runs the same prefills and steps on two decoders over the same weights, one reusing
// cached prefixes and one computing every prompt whole: prompt 0 into slot 0; prompt 1, which shares its
// first 40 tokens, into slot 1 (copied from slot 0); a step of both; then prompt 2, sharing 45 tokens with
// prompt 0, into slot 0 again (its own cache, nothing copied), and a step of both; then three prompts in one
// prefill, the second and third sharing 44 and 40 tokens with the first (computed whole first, then copied
// twice), and a step.
// Every prefill's and step's logits must agree within 1e-2 relative L2 (GEMMs over other row counts round
// differently in bf16; a wrong copy, gather, offset or kept length is off by O(1)), and the tokens wherever
// the top-2 margin exceeds twice the largest difference.
//
// With rows 60 (forwards of at most 80 rows: the capacity) the two prompts after p3's prefix take a forward
// each; with the default they share one.
func TestGPUPrefixReuse(t *testing.T) {
	for _, rows := range []int{0, 60} {
		t.Run(fmt.Sprintf("rows=%d", rows), func(t *testing.T) { testPrefixReuse(t, rows) })
	}
}

func testPrefixReuse(t *testing.T, rows int) {
	reuse, w := tinyDecoder(t, rows)
	whole, _ := tinyDecoder(t, rows)
	whole.reuseMin = -1
	V := w.Config.VocabSize
	rng := rand.New(rand.NewPCG(9, 10))
	tokens := func(n int) []int32 {
		v := make([]int32, n)
		for i := range v {
			v[i] = int32(rng.IntN(V))
		}
		return v
	}
	p0 := tokens(60)
	p1 := append(slices.Clone(p0[:40]), tokens(15)...)
	p2 := append(slices.Clone(p0[:45]), tokens(8)...)
	p3 := tokens(50)
	p4 := append(slices.Clone(p3[:44]), tokens(6)...)
	p5 := append(slices.Clone(p3[:40]), tokens(10)...)
	type out struct {
		logits [][][]float32 // per call, per sequence of the call in its order: [V]
		ids    [][]int32     // per call
	}
	run := func(dec *decoder) out {
		var o out
		seen := map[int32][]float32{} // the last logits of each sequence
		dec.onLogits = func(seqs []int32, lb cuda.Buffer, m int) error {
			v := make([]float32, m*V)
			for r, s := range seqs[:m] {
				seen[s] = v[r*V : (r+1)*V]
			}
			return cuda.Download(dec.d, v, lb)
		}
		defer func() { dec.onLogits = nil }()
		if err := dec.Begin(3, 80); err != nil {
			t.Fatal(err)
		}
		defer dec.End()
		must := func(seqs []int32) func([]int32, error) []int32 {
			return func(ids []int32, err error) []int32 {
				if err != nil {
					t.Fatal(err)
				}
				rows := make([][]float32, len(seqs))
				for k, s := range seqs {
					rows[k] = seen[s]
				}
				o.logits, o.ids = append(o.logits, rows), append(o.ids, ids)
				clear(seen)
				return ids
			}
		}
		a := must([]int32{0})(dec.Prefill([]int32{0}, [][]int32{p0}))
		b := must([]int32{1})(dec.Prefill([]int32{1}, [][]int32{p1}))
		s := must([]int32{0, 1})(dec.Step([]int32{0, 1}, []int32{a[0], b[0]}, []int32{60, 55}))
		c := must([]int32{0})(dec.Prefill([]int32{0}, [][]int32{p2}))
		must([]int32{0, 1})(dec.Step([]int32{0, 1}, []int32{c[0], s[1]}, []int32{53, 56}))
		// Three slots in one prefill: p3 is computed whole (a leader), then p4 and p5 reuse 44 and 40 of its tokens.
		d := must([]int32{0, 1, 2})(dec.Prefill([]int32{0, 1, 2}, [][]int32{p3, p4, p5}))
		must([]int32{0, 1, 2})(dec.Step([]int32{0, 1, 2}, d, []int32{50, 50, 50}))
		return o
	}
	got, want := run(reuse), run(whole)
	if reuse.reused != 40+45+44+40 || whole.reused != 0 || reuse.prompted != 60+55+53+3*50 {
		t.Errorf("%d of %d prompt tokens reused (without reuse: %d), want 169 of 318", reuse.reused, reuse.prompted, whole.reused)
	}
	worst := 0.0
	for k := range want.logits {
		for r, x := range want.logits[k] {
			g := got.logits[k][r]
			if len(g) != V || len(x) != V {
				t.Fatalf("call %d sequence %d: logits of %d and %d values, want %d", k, r, len(g), len(x), V)
			}
			e := numtest.RelL2(g, f64(x))
			worst = max(worst, e)
			if !(e <= 1e-2) {
				t.Errorf("call %d sequence %d: logits relative L2 %.3g from computing the prompts whole", k, r, e)
			}
			if id, margin := top2(x); got.ids[k][r] != id && margin > 2*numtest.MaxAbs(g, x) {
				t.Errorf("call %d sequence %d: token %d, whole %d with margin %.4g", k, r, got.ids[k][r], id, margin)
			}
		}
	}
	t.Logf("prefix reuse vs whole prefills: worst logits relative L2 %.3g over %d calls", worst, len(want.logits))
	if c := reuse.cached; c != nil {
		t.Errorf("End left the cache record %v", c)
	}
}
