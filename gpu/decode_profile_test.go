//go:build t2mcuda

package gpu

import (
	"slices"
	"testing"

	"github.com/t2m/t2m/model"
)

// TestGPUDecodeProfile times the decode steps of the tiny Qwen2 op by op: the profiled generation must give
// the tokens of an unprofiled one, time every step after the prefill, see each op of the model definition as
// often per step as Forward runs it (each projection once per layer, two norms and two adds per layer, ...),
// give each kind a positive time, and a step span no shorter than the ops it holds. With NF4 kept (GEMVs the
// decoder defers to fuse the residual add) each projection must still run in its own timed region: no add is
// fused in a profiled step, where an unprofiled one fuses two per layer.
func TestGPUDecodeProfile(t *testing.T) {
	t.Run("bf16", func(t *testing.T) { testDecodeProfile(t, false) })
	t.Run("nf4-kept", func(t *testing.T) { testDecodeProfile(t, true) })
}

func testDecodeProfile(t *testing.T, nf4 bool) {
	const rows, newTokens = 40, 6
	prompts := [][]int32{{1, 2, 3, 4, 5}, {7, 8, 9}}
	opts := model.LoadOptions{}
	if nf4 {
		opts.Quantize = model.QuantizeNF4
		t.Setenv("T2M_GPU_GRAPHS", "0") // every unprofiled step runs its forward (and fuses) on the host
	}
	gen := func(profile bool) ([][]int32, *gpuGenerator) {
		dec, _ := tinyDecoderWith(t, rows, opts, nf4)
		g := &gpuGenerator{d: dec.d, dec: dec}
		g.SetProfile(profile)
		out, err := model.GenerateGreedy(dec, prompts, model.GenerateOptions{MaxNewTokens: newTokens})
		if err != nil {
			t.Fatal(err)
		}
		return out, g
	}
	want, plain := gen(false)
	if ms, n := plain.Profile(); ms != nil || n != 0 {
		t.Fatalf("unprofiled generator reports %d steps", n)
	}
	if nf4 && plain.dec.fusedAdds == 0 {
		t.Fatal("no add fused without the profile: the case does not test deferred projections")
	}
	got, g := gen(true)
	for i := range want {
		// With NF4 kept the profiled adds round once more than the fused ones: tokens may differ at a near-tie.
		if !slices.Equal(got[i], want[i]) && (!nf4 || len(got[i]) != len(want[i])) {
			t.Errorf("prompt %d: %v profiled, %v not", i, got[i], want[i])
		}
	}
	ms, steps := g.Profile()
	if steps != newTokens-1 {
		t.Fatalf("%d steps timed, want %d (the first token comes from the prefill)", steps, newTokens-1)
	}
	L := g.dec.w.w.Config.NumLayers
	// The prefills (not profiled) fuse alike in both runs; unprofiled, each step fuses its 2·L adds.
	if d := plain.dec.fusedAdds - g.dec.fusedAdds; nf4 && d != steps*2*L {
		t.Errorf("profiled steps fused %d adds into deferred GEMVs (their time went to the op after them)",
			steps*2*L-d)
	}
	perStep := map[string]int{"embed": 1, "rmsnorm": 2*L + 1, "q_proj": L, "k_proj": L, "v_proj": L, "rope": 2 * L,
		"attention": L, "o_proj": L, "add": 2 * L, "gate_proj": L, "up_proj": L, "swiglu": L, "down_proj": L, "lm_head": 1}
	sum := 0.0
	for k, n := range perStep {
		if c := g.dec.prof.calls[k]; c != n*steps {
			t.Errorf("%s: %d calls over %d steps, want %d per step", k, c, steps, n)
		}
		if ms[k] <= 0 {
			t.Errorf("%s: %g ms per step", k, ms[k])
		}
		sum += ms[k]
	}
	if len(g.dec.prof.calls) != len(perStep) {
		t.Errorf("kinds timed %v, want those of %v", g.dec.prof.calls, perStep)
	}
	if ms["step span"] < 0.999*sum {
		t.Errorf("step span %.4f ms shorter than its ops' %.4f ms", ms["step span"], sum)
	}
	t.Logf("per step: ops %.4f ms, span %.4f ms", sum, ms["step span"])
}
