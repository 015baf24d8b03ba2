//go:build t2mcuda

package ops

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/train"
)

// adamwRef applies train.AdamW — the host optimizer t2m train uses, torch.optim.AdamW's formulas in
// fp32 — to copies of p, m, v at step t with gradients g·gscale: the CPU twin of AdamWStep.
func adamwRef(t *testing.T, p, m, v, g []float32, gscale float64, step int, h AdamWHyper) (pn, mn, vn []float32) {
	t.Helper()
	o := &train.AdamW{Beta1: h.Beta1, Beta2: h.Beta2, Eps: h.Eps, WeightDecay: h.WeightDecay, Step: step - 1,
		M: [][]float32{slices.Clone(m)}, V: [][]float32{slices.Clone(v)}}
	pn = slices.Clone(p)
	gs := make([]float32, len(g))
	for i, x := range g {
		gs[i] = float32(float64(x) * gscale)
	}
	if err := o.Update([][]float32{pn}, [][]float32{gs}, h.LR); err != nil {
		t.Fatal(err)
	}
	return pn, o.M[0], o.V[0]
}

func TestAdamWParity(t *testing.T) {
	d := cudatest.Device(t)
	a := cudatest.Arena(t, d, 16<<20)
	rng := rand.New(rand.NewPCG(8, 8))
	const n = 100003
	p, g := ktRand(rng, n, -1, 1), ktRand(rng, n, -0.01, 0.01)
	m, v := ktRand(rng, n, -0.01, 0.01), ktRand(rng, n, 0, 1e-4)
	// A large learning rate, so that the update is large against p's rounding and the test can see it.
	h := AdamWHyper{LR: 0.05, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1}
	const step, gscale = 3, 0.37
	wp, wm, wv := adamwRef(t, p, m, v, g, gscale, step, h)

	bp, bm, bv, bg := ktUp(t, d, a, p), ktUp(t, d, a, m), ktUp(t, d, a, v), ktUp(t, d, a, g)
	bs := ktUp(t, d, a, []float32{gscale})
	bpb := ktPoison(t, d, a, n*2)
	if err := AdamWStep(d, bp, bm, bv, bg, bpb, bs, n, step, h); err != nil {
		t.Fatal(err)
	}
	gp := ktGetF32(t, d, bp, n)
	du, wu := make([]float32, n), make([]float32, n) // the updates, compared so that p itself cannot hide them
	for i := range p {
		du[i], wu[i] = gp[i]-p[i], wp[i]-p[i]
	}
	ktCompare(t, "adamw p - p0", du, wu, 1e-4) // fp32 p rounding (6e-8·|p|) over updates ~5e-2·|p|
	ktCompare(t, "adamw p", gp, wp, tolF32)
	ktCompare(t, "adamw m", ktGetF32(t, d, bm, n), wm, tolF32)
	ktCompare(t, "adamw v", ktGetF32(t, d, bv, n), wv, tolF32)
	ktCompare(t, "adamw p bf16", ktGetBF16(t, d, bpb, n), wp, tolBF16)

	// Without a grad scale or a bf16 copy.
	wp, _, _ = adamwRef(t, gp, ktGetF32(t, d, bm, n), ktGetF32(t, d, bv, n), g, 1, step+1, h)
	if err := AdamWStep(d, bp, bm, bv, bg, cuda.Buffer{}, cuda.Buffer{}, n, step+1, h); err != nil {
		t.Fatal(err)
	}
	ktCompare(t, "adamw p (step 4, no scale)", ktGetF32(t, d, bp, n), wp, tolF32)
}
