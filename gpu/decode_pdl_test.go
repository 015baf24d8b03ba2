//go:build t2mcuda

package gpu

import (
	"testing"

	"github.com/t2m/t2m/model"
)

// TestGPUDecodePDL generates greedily on the tiny Qwen2 with NF4 kept at 4 bits (projections through the
// fused GEMV), with programmatic dependent launch (each kernel of a forward may start before the one ahead of
// it has finished, and waits for it inside) and without (T2M_GPU_PDL=0), steps as CUDA graphs and side streams
// in both. The same kernels run on the same inputs, so every forward's logits must be equal bit for bit and the
// tokens identical: a kernel that read its input before waiting would see it half written. On a Hopper card
// kernels must have been launched that way.
func TestGPUDecodePDL(t *testing.T) {
	var cc [2]int
	run := func(pdl bool) ([][]int32, [][]float32, int) {
		if !pdl {
			t.Setenv("T2M_GPU_PDL", "0")
		}
		dec, w := tinyDecoderWith(t, 40, model.LoadOptions{Quantize: model.QuantizeNF4}, true)
		before := dec.d.PDLLaunches()
		cc = dec.d.CC
		out, logits := generateLogged(t, dec, w.Config.VocabSize)
		if dec.steps != nil && dec.steps.off != nil {
			t.Fatalf("graphs turned off: %v", dec.steps.off)
		}
		if dec.d.PDL {
			t.Fatal("the device still launches with PDL after the generation")
		}
		return out, logits, dec.d.PDLLaunches() - before
	}
	gotOut, gotLogits, n := run(true)
	wantOut, wantLogits, off := run(false)
	if off != 0 {
		t.Fatalf("%d launches with PDL with T2M_GPU_PDL=0", off)
	}
	if cc[0] >= 9 && n == 0 {
		t.Fatalf("no kernel launched with PDL on compute capability %d.%d", cc[0], cc[1])
	}
	t.Logf("%d kernels launched with PDL", n)
	sameGeneration(t, "programmatic dependent launch", gotOut, wantOut, gotLogits, wantLogits)
}
