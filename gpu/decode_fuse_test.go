//go:build t2mcuda

package gpu

import (
	"math"
	"testing"

	"github.com/t2m/t2m/model"
)

// TestGPUDecodeFuseAdd generates greedily on the tiny Qwen2 with NF4 kept at 4 bits, with the residual adds
// done by the o_proj and down_proj GEMVs (beta 1) and with separate adds (T2M_GPU_FUSE_ADD=0). Fusion must have
// happened in the first run and not in the second. The fused sums round once where the separate ones round
// twice, so the outputs are not bit-equal: the first two forwards' logits (the same inputs in both runs) must
// agree within 2e-2 relative L2, the bound TestGPUGeneratorTiny holds either path to against the CPU, which also
// checks the fused path's tokens (its nf4-kept and nf4+lora-per-use cases run with fusion on).
func TestGPUDecodeFuseAdd(t *testing.T) {
	run := func(fuse bool) ([][]float32, int) {
		if !fuse {
			t.Setenv("T2M_GPU_FUSE_ADD", "0")
		}
		dec, w := tinyDecoderWith(t, 40, model.LoadOptions{Quantize: model.QuantizeNF4}, true)
		_, logits := generateLogged(t, dec, w.Config.VocabSize)
		return logits, dec.fusedAdds
	}
	fused, n := run(true)
	if n == 0 {
		t.Fatal("no residual add was done by a GEMV")
	}
	plain, off := run(false)
	if off != 0 {
		t.Fatalf("%d fused adds with T2M_GPU_FUSE_ADD=0", off)
	}
	t.Logf("%d residual adds done by the projection's GEMV", n)
	// The prefill (forward 0) may be too long for the GEMV (then its logits are equal); the first step (forward 1)
	// runs its projections through the GEMV, on the same tokens unless the prefill's argmax flipped at a near-tie.
	if len(fused) < 2 || len(plain) < 2 {
		t.Fatalf("%d and %d forwards", len(fused), len(plain))
	}
	for k := range 2 {
		if len(fused[k]) != len(plain[k]) {
			t.Fatalf("forward %d: %d and %d logits", k, len(fused[k]), len(plain[k]))
		}
		var d2, n2 float64
		for i, v := range plain[k] {
			d := float64(fused[k][i]) - float64(v)
			d2 += d * d
			n2 += float64(v) * float64(v)
		}
		if rel := math.Sqrt(d2 / n2); !(rel <= 2e-2) {
			t.Errorf("forward %d's logits: relative L2 difference %.3g between fused and separate adds (bound 2e-2)", k, rel)
		} else {
			t.Logf("forward %d's logits: relative L2 difference %.3g", k, rel)
		}
	}
}
