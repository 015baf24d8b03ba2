//go:build t2mcuda

package gpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// adamwRef is torch.optim.AdamW's update (amsgrad off) for step t, in float64: the reference of the test
// below. (train/ has no CPU optimizer yet; when it does, compare with it instead.)
func adamwRef(p, m, v, g []float32, gscale float64, t int, h AdamWHyper) (pn, mn, vn []float32) {
	pn, mn, vn = make([]float32, len(p)), make([]float32, len(p)), make([]float32, len(p))
	bc1 := 1 - math.Pow(h.Beta1, float64(t))
	bc2 := 1 - math.Pow(h.Beta2, float64(t))
	for i := range p {
		gi := float64(g[i]) * gscale
		pi := float64(p[i]) * (1 - h.LR*h.WeightDecay)
		mi := h.Beta1*float64(m[i]) + (1-h.Beta1)*gi
		vi := h.Beta2*float64(v[i]) + (1-h.Beta2)*gi*gi
		pi -= h.LR / bc1 * mi / (math.Sqrt(vi)/math.Sqrt(bc2) + h.Eps)
		pn[i], mn[i], vn[i] = float32(pi), float32(mi), float32(vi)
	}
	return
}

func TestAdamWParity(t *testing.T) {
	d := device(t)
	a := arena(t, d, 16<<20)
	rng := rand.New(rand.NewPCG(8, 8))
	const n = 100003
	p, g := ktRand(rng, n, -1, 1), ktRand(rng, n, -0.01, 0.01)
	m, v := ktRand(rng, n, -0.01, 0.01), ktRand(rng, n, 0, 1e-4)
	// A large learning rate, so that the update is large against p's rounding and the test can see it.
	h := AdamWHyper{LR: 0.05, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1}
	const step, gscale = 3, 0.37
	wp, wm, wv := adamwRef(p, m, v, g, gscale, step, h)

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
	wp, _, _ = adamwRef(gp, ktGetF32(t, d, bm, n), ktGetF32(t, d, bv, n), g, 1, step+1, h)
	if err := AdamWStep(d, bp, bm, bv, bg, Buffer{}, Buffer{}, n, step+1, h); err != nil {
		t.Fatal(err)
	}
	ktCompare(t, "adamw p (step 4, no scale)", ktGetF32(t, d, bp, n), wp, tolF32)
}
