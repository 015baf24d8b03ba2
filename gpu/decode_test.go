//go:build t2mcuda

package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/internal/numtest"
	"github.com/t2m/t2m/model"
)

// top2 returns the index of the largest value and its margin over the second largest.
func top2(v []float32) (int32, float64) {
	best := model.Argmax(v)
	second := math.Inf(-1)
	for i, x := range v {
		if int32(i) != best {
			second = max(second, float64(x))
		}
	}
	return best, float64(v[best]) - second
}

// TestGPUGeneratorTiny runs the GPU decoder on the tiny Qwen2 (GQA, biases, untied lm_head, vocab 152064)
// against model.Generator, for bf16 weights, NF4 dequantized to bf16 at load, NF4 kept at 4 bits (steps and
// prefills of up to 96 rows through ops.NF4GEMVFused with the bias fused, longer prefills dequantized per use;
// its tensor-core GEMM for 33..96 rows on a wider model with 40 and 70 prompts, with and without an adapter),
// and NF4 + LoRA merged and applied per use (steps of up to 6 rows in the fused GEMV's epilogue, prefills of 7
// and more rows dequantized per use), with prompts of different lengths prefilled together (two cases bound
// the rows of a prefill forward, so their prompts are prefilled in several groups).
//
//  1. Teacher forcing on the CPU's tokens: the prefill logits and every step's logits of every sequence
//     within 2e-2 relative L2 of the CPU's (bf16 weights and activations through two layers, as
//     TestMachineLogits), and the GPU's argmax equal to the CPU's wherever the CPU's top-2 margin exceeds
//     2·e, e the largest absolute logit error of that row: only there can a bf16 error flip the choice.
//  2. Free-running model.GenerateGreedy: the same tokens as model.Generator.Generate up to the first difference,
//     which is accepted only at a near-tie (CPU top-2 margin ≤ 4·e of that prompt's teacher-forced step; 2×
//     slack because the rows batched together differ); after it the sequences legitimately differ.
func TestGPUGeneratorTiny(t *testing.T) {
	d := cudatest.Device(t)
	reg, err := model.Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	// wide is the tiny model at widths ops.NF4GEMVFused's tensor-core GEMM takes (in a multiple of 256): steps
	// and prefills of 33..96 rows of its "gemm" cases multiply straight from the NF4 codes in nf4_gemm_*.
	wide := reg.Config
	wide.HiddenSize, wide.IntermediateSize, wide.NumHeads, wide.NumKVHeads, wide.HeadDim = 256, 512, 2, 1, 128
	wide.VocabSize = 4096
	const steps = 10
	for _, c := range []struct {
		name              string
		nf4, lora, perUse bool
		rows              int // prefill rows (0: default)
		gemvRows          int // decoder.gemvRows (0: default)
		wide              bool
		prompts           int // random prompts of 1..12 tokens (0: the six below)
	}{{"bf16", false, false, false, 0, 0, false, 0}, {"nf4", true, false, false, 16, 0, false, 0},
		{"nf4-kept", true, false, true, 0, 0, false, 0}, {"nf4+lora-merged", true, true, false, 0, 0, false, 0},
		{"nf4+lora-per-use", true, true, true, 16, 6, false, 0},
		{"nf4-kept-gemm", true, false, true, 96, 0, true, 70}, {"nf4-kept-gemm-40", true, false, true, 64, 0, true, 40},
		{"nf4+lora-per-use-gemm", true, true, true, 64, 0, true, 40}} {
		t.Run(c.name, func(t *testing.T) {
			d.Bind()
			rng := rand.New(rand.NewPCG(41, 42))
			opt := model.LoadOptions{}
			if c.nf4 {
				opt.Quantize = model.QuantizeNF4
			}
			cfg := reg.Config
			if c.wide {
				cfg = wide
			}
			V := cfg.VocabSize
			w, err := model.RandomWeights(cfg, reg.Seed, opt)
			if err != nil {
				t.Fatal(err)
			}
			var lp *model.LoRAParams
			if c.lora && c.wide {
				// Half cudatest.RandomLoRA's spread: at these widths its adapters (s·B·A about twice the base
				// weights) put the bf16 logits of both the NF4 GEMM and the dequantized path 2-4% (relative L2)
				// from the CPU's float32 ones, beyond this test's 2e-2.
				lp = model.RandomLoRA(w, 4, 0.05, rng.NormFloat64)
			} else if c.lora {
				lp = cudatest.RandomLoRA(w, 4, rng)
			}
			a := cudatest.Arena(t, d, 512<<20)
			blas, err := d.BLAS()
			if err != nil {
				t.Fatal(err)
			}
			dw, err := loadDecodeWeights(d, blas, a, w, lp, c.perUse)
			if err != nil {
				t.Fatal(err)
			}
			dec := newDecoder(d, blas, a, dw, c.rows)
			dec.gemvRows = c.gemvRows
			cpu, err := model.NewGenerator(w, lp)
			if err != nil {
				t.Fatal(err)
			}
			lens := []int{7, 7, 12, 3, 7, 7}
			if c.prompts > 0 {
				lens = make([]int, c.prompts)
				for i := range lens {
					lens[i] = 1 + rng.IntN(12)
				}
			}
			prompts := make([][]int32, len(lens))
			for i, n := range lens {
				prompts[i] = make([]int32, n)
				for j := range prompts[i] {
					prompts[i][j] = int32(rng.IntN(V))
				}
			}
			n := len(prompts)

			// CPU trajectory: logits[k] [n, V] at step k (k = 0: prefill), tokens[k] = their argmax.
			caches := make([]*model.KVCache, n)
			cpuLogits := make([][]float32, steps+1)
			cpuLogits[0] = make([]float32, 0, n*V)
			for i, p := range prompts {
				kv, l, err := cpu.Prefill(p, len(p)+steps+1)
				if err != nil {
					t.Fatal(err)
				}
				caches[i] = kv
				cpuLogits[0] = append(cpuLogits[0], l...)
			}
			tokens := make([][]int32, steps+1)
			for k := 0; ; k++ {
				tokens[k] = make([]int32, n)
				for i := range n {
					tokens[k][i] = model.Argmax(cpuLogits[k][i*V : (i+1)*V])
				}
				if k == steps {
					break
				}
				if cpuLogits[k+1], err = cpu.Step(caches, tokens[k]); err != nil {
					t.Fatal(err)
				}
			}

			// 1. Teacher forcing.
			gpuLogits := make([]float32, n*V)
			dec.onLogits = func(seqs []int32, lb cuda.Buffer, rows int) error {
				v := make([]float32, rows*V)
				if err := cuda.Download(d, v, lb); err != nil {
					return err
				}
				for r, s := range seqs {
					copy(gpuLogits[int(s)*V:(int(s)+1)*V], v[r*V:(r+1)*V])
				}
				return nil
			}
			if err := dec.Begin(n, 12+steps+1); err != nil {
				t.Fatal(err)
			}
			errAt := make([][]float64, steps+1) // [k][i] max abs logit error
			worst := 0.0
			seqs, pos := make([]int32, n), make([]int32, n)
			for i := range seqs {
				seqs[i], pos[i] = int32(i), int32(lens[i])
			}
			for k := 0; k <= steps; k++ {
				if err := d.Memset(dec.logits, 0xFF); err != nil { // poison: NaN where lm_head writes nothing
					t.Fatal(err)
				}
				var got []int32
				if k == 0 {
					got, err = dec.Prefill(seqs, prompts)
				} else {
					got, err = dec.Step(seqs, tokens[k-1], pos)
					for i := range pos {
						pos[i]++
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				errAt[k] = make([]float64, n)
				for i := range n {
					g, want := gpuLogits[i*V:(i+1)*V], cpuLogits[k][i*V:(i+1)*V]
					rel := numtest.RelL2(g, f64(want))
					worst = max(worst, rel)
					if !(rel <= 2e-2) {
						t.Errorf("step %d prompt %d: logits relative L2 error %.3g exceeds 2e-2", k, i, rel)
					}
					e := numtest.MaxAbs(g, want)
					errAt[k][i] = e
					if id, margin := top2(want); got[i] != id && margin > 2*e {
						t.Errorf("step %d prompt %d: GPU token %d, CPU %d with margin %.4g > 2·%.4g", k, i, got[i], id,
							margin, e)
					}
				}
			}
			dec.End()
			dec.onLogits = nil
			t.Logf("teacher forcing: worst logits relative L2 error %.3g over %d rows (tolerance 2e-2)", worst, n*(steps+1))

			// 2. Free-running.
			want, err := cpu.Generate(prompts, model.GenerateOptions{MaxNewTokens: steps})
			if err != nil {
				t.Fatal(err)
			}
			// All prompts together, and continuously batched in 2 slots (prompts start as slots free up).
			for _, slots := range []int{0, 2} {
				got, err := model.GenerateGreedy(dec, prompts, model.GenerateOptions{MaxNewTokens: steps, Slots: slots})
				if err != nil {
					t.Fatal(err)
				}
				same := 0
				for i := range n {
					k := 0
					for k < len(want[i]) && k < len(got[i]) && got[i][k] == want[i][k] {
						k++
					}
					same += k
					if k == len(want[i]) && len(got[i]) == len(want[i]) {
						continue
					}
					if k >= len(want[i]) || k >= len(got[i]) {
						t.Errorf("%d slots, prompt %d: %d tokens, want %d", slots, i, len(got[i]), len(want[i]))
						continue
					}
					_, margin := top2(cpuLogits[k][i*V : (i+1)*V])
					t.Logf("%d slots, prompt %d: first difference at token %d (GPU %d, CPU %d): CPU top-2 margin %.4g, bf16 error %.4g",
						slots, i, k, got[i][k], want[i][k], margin, errAt[k][i])
					if margin > 4*errAt[k][i] {
						t.Errorf("%d slots, prompt %d: token %d differs (GPU %d, CPU %d) where the CPU's margin %.4g exceeds 4·%.4g",
							slots, i, k, got[i][k], want[i][k], margin, errAt[k][i])
					}
				}
				t.Logf("free-running, %d slots: %d of %d tokens equal before any near-tie difference", slots, same, n*steps)
			}
		})
	}
}

// TestPlanPrefill checks the grouping of prompts into prefill forwards: every prompt once, longest first,
// each group padded to its first prompt's length and within the rows (a longer prompt alone), as few groups
// as the greedy fill gives.
func TestPlanPrefill(t *testing.T) {
	for _, c := range []struct {
		lens   []int
		rows   int
		groups [][]int // prompt indices per group
	}{
		{[]int{5, 13, 1, 9, 13, 2, 7}, 40, [][]int{{1, 4, 3}, {6, 0, 5, 2}}},
		{[]int{5, 13, 1, 9, 13, 2, 7}, 30, [][]int{{1, 4}, {3, 6, 0}, {5, 2}}},
		{[]int{50, 3, 3}, 40, [][]int{{0}, {1, 2}}},
		{[]int{4, 4, 4}, 8, [][]int{{0, 1}, {2}}},
		{nil, 8, nil},
	} {
		var got [][]int
		for _, g := range planPrefill(c.lens, c.rows) {
			got = append(got, g.idx)
			longest := 0
			for _, i := range g.idx {
				longest = max(longest, c.lens[i])
			}
			if g.T != longest || (len(g.idx) > 1 && len(g.idx)*g.T > c.rows) {
				t.Errorf("lens %v, rows %d: group %v of %d tokens each", c.lens, c.rows, g.idx, g.T)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(c.groups) {
			t.Errorf("lens %v, rows %d: groups %v, want %v", c.lens, c.rows, got, c.groups)
		}
	}
}

// tinyDecoder is a decoder over the tiny Qwen2's random float32 weights (bf16 on the device, no adapter)
// with prefill forwards of up to rows rows (0: the default), in a 512 MiB arena freed when the test ends.
func tinyDecoder(t *testing.T, rows int) (*decoder, *model.Weights) {
	t.Helper()
	return tinyDecoderWith(t, rows, model.LoadOptions{}, false)
}

// tinyDecoderWith is tinyDecoder with the random weights made under opts (e.g. quantized to NF4) and, when
// keepNF4, NF4 projections kept at 4 bits on the device (multiplied by the fused GEMV).
func tinyDecoderWith(t *testing.T, rows int, opts model.LoadOptions, keepNF4 bool) (*decoder, *model.Weights) {
	t.Helper()
	d := cudatest.Device(t)
	reg, err := model.Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	w, err := model.RandomWeights(reg.Config, reg.Seed, opts)
	if err != nil {
		t.Fatal(err)
	}
	a := cudatest.Arena(t, d, 512<<20)
	blas, err := d.BLAS()
	if err != nil {
		t.Fatal(err)
	}
	dw, err := loadDecodeWeights(d, blas, a, w, nil, keepNF4)
	if err != nil {
		t.Fatal(err)
	}
	return newDecoder(d, blas, a, dw, rows), w
}

// TestGPUPrefillMixedLengths prefills prompts of different lengths (1 to 13 tokens, in slots other than their
// indices) with one Prefill call, in two forwards of at most 40 rows that each mix lengths, and compares each
// prompt's logits, and those of two steps after (which read the caches the prefill filled), with the same
// decoder prefilling each prompt alone (the steps fed the same tokens). The two runs differ only where
// cuBLAS sums a GEMM over more rows in another order: logits within 1e-2 relative L2 (a padding key or
// value in a cache is off by O(1)), ids equal wherever the top-2 margin exceeds 2× the largest difference.
// The prefill logits are also compared with the CPU generator's, which catches a wrong lm_head row that
// prefilling alone would share: within 5e-2 (TestGPUGeneratorTiny holds the bf16 error to 2e-2; another
// position's logits are off by ~1). PrefillLogits gives the same rows in prompt order.
func TestGPUPrefillMixedLengths(t *testing.T) {
	const rows, steps = 40, 2
	dec, w := tinyDecoder(t, rows)
	V := w.Config.VocabSize
	rng := rand.New(rand.NewPCG(7, 8))
	lens := []int{5, 13, 1, 9, 13, 2, 7} // groups (planPrefill): {13, 13, 9}, {7, 5, 2, 1}
	slotOf := []int32{3, 0, 6, 1, 5, 2, 4}
	n := len(lens)
	prompts := make([][]int32, n)
	for i := range prompts {
		prompts[i] = make([]int32, lens[i])
		for j := range prompts[i] {
			prompts[i][j] = int32(rng.IntN(V))
		}
	}

	// run prefills the prompts, each alone or all in one call, then steps them feeding feed[k] (nil: its own
	// tokens). It returns the logits [k][slot·V] of the prefill (k = 0) and each step, and the tokens [k][prompt].
	run := func(alone bool, feed [][]int32) ([][]float32, [][]int32) {
		logits, ids := make([][]float32, steps+1), make([][]int32, steps+1)
		var cur []float32 // logits[k] of the prefill or step running
		forwards := 0
		dec.onLogits = func(seqs []int32, lb cuda.Buffer, m int) error {
			v := make([]float32, m*V)
			if err := cuda.Download(dec.d, v, lb); err != nil {
				return err
			}
			for r, s := range seqs {
				copy(cur[int(s)*V:(int(s)+1)*V], v[r*V:(r+1)*V])
			}
			forwards++
			return nil
		}
		defer func() { dec.onLogits = nil }()
		if err := dec.Begin(n, 13+steps); err != nil {
			t.Fatal(err)
		}
		defer dec.End()
		if feed == nil {
			feed = ids
		}
		pos := make([]int32, n)
		for k := 0; k <= steps; k++ {
			cur = make([]float32, n*V)
			logits[k] = cur
			if err := dec.d.Memset(dec.logits, 0xFF); err != nil { // poison: NaN where lm_head writes nothing
				t.Fatal(err)
			}
			var err error
			switch {
			case k == 0 && alone:
				ids[0] = make([]int32, n)
				for i := range prompts {
					got, err := dec.Prefill(slotOf[i:i+1], prompts[i:i+1])
					if err != nil {
						t.Fatal(err)
					}
					ids[0][i] = got[0]
				}
			case k == 0:
				ids[0], err = dec.Prefill(slotOf, prompts)
				if forwards != 2 {
					t.Errorf("prefill of lengths %v in %d forwards of ≤ %d rows, want 2", lens, forwards, rows)
				}
			default:
				for i := range pos {
					pos[i] = int32(lens[i] + k - 1)
				}
				ids[k], err = dec.Step(slotOf, feed[k-1], pos)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		return logits, ids
	}
	want, wantIDs := run(true, nil)
	got, gotIDs := run(false, wantIDs)
	cpu, err := model.NewGenerator(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range prompts {
		_, l, err := cpu.Prefill(p, len(p)+1) // [V]: the next-token logits after p
		if err != nil {
			t.Fatal(err)
		}
		s := int(slotOf[i])
		if rel := numtest.RelL2(got[0][s*V:(s+1)*V], l); !(rel <= 5e-2) {
			t.Errorf("prompt %d (%d tokens): prefill logits relative L2 %.3g from the CPU generator's (tolerance 5e-2)",
				i, lens[i], rel)
		}
	}
	worst := 0.0
	for k := range steps + 1 {
		for i := range n {
			s := int(slotOf[i])
			g, w := got[k][s*V:(s+1)*V], want[k][s*V:(s+1)*V]
			rel := numtest.RelL2(g, f64(w))
			worst = max(worst, rel)
			if !(rel <= 1e-2) {
				t.Errorf("step %d prompt %d (%d tokens): logits relative L2 %.3g from prefilling it alone (tolerance 1e-2)",
					k, i, lens[i], rel)
			}
			if id, margin := top2(w); gotIDs[k][i] != id && margin > 2*numtest.MaxAbs(g, w) {
				t.Errorf("step %d prompt %d: token %d, alone %d with margin %.4g", k, i, gotIDs[k][i], id, margin)
			}
		}
	}
	t.Logf("mixed-length prefill vs each prompt alone: worst logits relative L2 %.3g over %d rows (prefill and %d steps)",
		worst, n*(steps+1), steps)

	// PrefillLogits: the prefill's rows, in prompt order.
	if err := dec.Begin(n, 13+steps); err != nil {
		t.Fatal(err)
	}
	kept, err := dec.PrefillLogits(slotOf, prompts)
	dec.End()
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		s := int(slotOf[i])
		if rel := numtest.RelL2(kept[i*V:(i+1)*V], f64(got[0][s*V:(s+1)*V])); !(rel <= 1e-4) {
			t.Errorf("PrefillLogits row %d: relative L2 %.3g from prompt %d's prefill logits", i, rel, i)
		}
	}
}

// f64 widens v.
func f64(v []float32) []float64 {
	w := make([]float64, len(v))
	for i, x := range v {
		w[i] = float64(x)
	}
	return w
}
