//go:build t2mcuda

package gpu

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/model"
)

// TestGPUDecodeOverlap generates greedily on the tiny Qwen2 with NF4 kept at 4 bits (projections through the
// fused GEMV), with k and v beside q and up beside gate on side streams, and with everything on the main
// stream (T2M_GPU_OVERLAP=0): 5 prompts in 3 slots, 12 new tokens, steps as CUDA graphs in both. The same
// kernels run on the same inputs, only on other streams, so every forward's logits must be equal bit for bit
// and the tokens identical; and projections must have run on a side stream.
func TestGPUDecodeOverlap(t *testing.T) {
	run := func(overlap bool) ([][]int32, [][]float32, int) {
		if !overlap {
			t.Setenv("T2M_GPU_OVERLAP", "0")
		}
		d := cudatest.Device(t)
		reg, err := model.Lookup("tiny")
		if err != nil {
			t.Fatal(err)
		}
		w, err := model.RandomWeights(reg.Config, reg.Seed, model.LoadOptions{Quantize: model.QuantizeNF4})
		if err != nil {
			t.Fatal(err)
		}
		a := cudatest.Arena(t, d, 512<<20)
		blas, err := d.BLAS()
		if err != nil {
			t.Fatal(err)
		}
		dw, err := loadDecodeWeights(d, blas, a, w, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		dec := newDecoder(d, blas, a, dw, 40)
		V := w.Config.VocabSize
		var logits [][]float32
		dec.onLogits = func(seqs []int32, lb cuda.Buffer, m int) error {
			v := make([]float32, m*V)
			if err := cuda.Download(dec.d, v, lb); err != nil {
				return err
			}
			logits = append(logits, v)
			return nil
		}
		rng := rand.New(rand.NewPCG(9, 10))
		prompts := make([][]int32, 5)
		for i := range prompts {
			prompts[i] = make([]int32, 3+rng.IntN(9))
			for j := range prompts[i] {
				prompts[i][j] = int32(rng.IntN(V))
			}
		}
		out, err := model.GenerateGreedy(dec, prompts, model.GenerateOptions{MaxNewTokens: 12, Slots: 3})
		if err != nil {
			t.Fatal(err)
		}
		if dec.steps != nil && dec.steps.off != nil {
			t.Fatalf("graphs turned off: %v", dec.steps.off)
		}
		runs := 0
		if dec.ov != nil {
			runs = dec.ov.runs
		}
		return out, logits, runs
	}
	gotOut, gotLogits, runs := run(true)
	if runs == 0 {
		t.Fatal("no projection ran on a side stream")
	}
	wantOut, wantLogits, off := run(false)
	if off != 0 {
		t.Fatalf("%d projections on side streams with T2M_GPU_OVERLAP=0", off)
	}
	t.Logf("%d projections ran on side streams", runs)
	for i := range wantOut {
		if !slices.Equal(gotOut[i], wantOut[i]) {
			t.Errorf("prompt %d: tokens %v with side streams, %v without", i, gotOut[i], wantOut[i])
		}
	}
	if len(gotLogits) != len(wantLogits) {
		t.Fatalf("%d forwards with side streams, %d without", len(gotLogits), len(wantLogits))
	}
	for k := range wantLogits {
		if !slices.Equal(gotLogits[k], wantLogits[k]) {
			t.Errorf("forward %d: logits differ with side streams", k)
		}
	}
}
