//go:build t2mcuda

package gpu

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/t2m/t2m/internal/numtest"
	"github.com/t2m/t2m/model"
)

// The decoder's logits rows (sampling) are the rows its argmax (greedy) reads: PrefillLogits and StepLogits
// give rows whose argmax are Prefill's and Step's tokens, close to the CPU's logits; sampling through
// GenerateGreedy repeats with its seed, and temperature 0 gives the greedy tokens.
func TestGPUDecoderLogitsForSampling(t *testing.T) {
	dec, w := tinyDecoder(t, 0)
	V := w.Config.VocabSize
	rng := rand.New(rand.NewPCG(3, 4))
	prompts := [][]int32{make([]int32, 9), make([]int32, 4)}
	for _, p := range prompts {
		for j := range p {
			p[j] = int32(rng.IntN(V))
		}
	}
	seqs, pos := []int32{0, 1}, []int32{9, 4}

	// Greedy: tokens only.
	if err := dec.Begin(2, 16); err != nil {
		t.Fatal(err)
	}
	first, err := dec.Prefill(seqs, prompts)
	if err != nil {
		t.Fatal(err)
	}
	second, err := dec.Step(seqs, first, pos)
	if err != nil {
		t.Fatal(err)
	}
	dec.End()

	// The same with the logits rows.
	if err := dec.Begin(2, 16); err != nil {
		t.Fatal(err)
	}
	l0, err := dec.PrefillLogits(seqs, prompts) // [2, V]
	if err != nil {
		t.Fatal(err)
	}
	l1, err := dec.StepLogits(seqs, first, pos) // [2, V]
	if err != nil {
		t.Fatal(err)
	}
	dec.End()
	if len(l0) != 2*V || len(l1) != 2*V || dec.keep || dec.kept != nil {
		t.Fatalf("logits of %d and %d values, want %d each; keep %v after", len(l0), len(l1), 2*V, dec.keep)
	}
	for r := range 2 {
		if g0, g1 := model.Argmax(l0[r*V:(r+1)*V]), model.Argmax(l1[r*V:(r+1)*V]); g0 != first[r] || g1 != second[r] {
			t.Errorf("row %d: argmax of the logits rows %d, %d; greedy tokens %d, %d", r, g0, g1, first[r], second[r])
		}
	}
	cpu, err := model.NewGenerator(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, want, err := cpu.Prefill(prompts[0], 16)
	if err != nil {
		t.Fatal(err)
	}
	if e := numtest.RelL2(l0[:V], want); e > 2e-2 {
		t.Errorf("prefill logits vs the CPU's: rel L2 %.2e", e)
	}

	gen := func(s *model.Sampling) [][]int32 {
		out, err := model.GenerateGreedy(dec, prompts, model.GenerateOptions{MaxNewTokens: 8, Sampling: s})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	same := func(x, y [][]int32) bool {
		return slices.EqualFunc(x, y, func(p, q []int32) bool { return slices.Equal(p, q) })
	}
	s := &model.Sampling{Temperature: 1, TopP: 0.9, Seed: 5}
	if a, b := gen(s), gen(s); !same(a, b) {
		t.Errorf("seed 5 twice: %v and %v", a, b)
	}
	if g, z := gen(nil), gen(&model.Sampling{TopP: 1}); !same(g, z) {
		t.Errorf("temperature 0: %v, greedy %v", z, g)
	}
}
