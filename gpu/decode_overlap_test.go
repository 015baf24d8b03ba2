//go:build t2mcuda

package gpu

import (
	"testing"

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
		dec, w := tinyDecoderWith(t, 40, model.LoadOptions{Quantize: model.QuantizeNF4}, true)
		out, logits := generateLogged(t, dec, w.Config.VocabSize)
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
	sameGeneration(t, "side streams", gotOut, wantOut, gotLogits, wantLogits)
}
