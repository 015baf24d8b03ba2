package model

import (
	"math"
	"math/rand"
	"path/filepath"
	"testing"

	G "gorgonia.org/gorgonia"
)

func TestDropoutMask(t *testing.T) {
	const n, p = 100000, float32(0.1)
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i%7) + 1
	}
	out := make([]float32, n)
	DropoutForward(out, x, p, DropoutSeed(3, "model.layers.0.self_attn.q_proj.lora_dropout"))
	kept := 0
	for i, v := range out {
		switch v {
		case 0:
		case x[i] / (1 - p):
			kept++
		default:
			t.Fatalf("element %d: %v, want 0 or x/(1-p) = %v", i, v, x[i]/(1-p))
		}
	}
	// Binomial(n, 0.9): σ of the kept fraction is √(0.09/n) ≈ 0.00095; 5σ bound.
	if f := float64(kept) / n; math.Abs(f-0.9) > 0.005 {
		t.Errorf("kept fraction %.4f, want 0.9 ± 0.005", f)
	}
	other := make([]float32, n)
	DropoutForward(other, x, p, DropoutSeed(4, "model.layers.0.self_attn.q_proj.lora_dropout"))
	same := 0
	for i := range out {
		if (out[i] == 0) == (other[i] == 0) {
			same++
		}
	}
	// Independent masks agree with probability 0.9² + 0.1² = 0.82.
	if f := float64(same) / n; math.Abs(f-0.82) > 0.01 {
		t.Errorf("masks of two steps agree on %.4f of elements, want 0.82 (independent)", f)
	}
}

func TestLinearLoRABackwardSplitFiniteDiff(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	s := LinearShape{Rows: 4, In: 7, Out: 5, Rank: 2, Scaling: 2}
	x, xl := randSlice(rng, s.Rows*s.In, 1), randSlice(rng, s.Rows*s.In, 1)
	w, bias := randSlice(rng, s.Out*s.In, 0.3), randSlice(rng, s.Out, 0.1)
	a, b := randSlice(rng, s.Rank*s.In, 0.3), randSlice(rng, s.Out*s.Rank, 0.3)
	r := randSlice(rng, s.Rows*s.Out, 1)
	y := make([]float32, s.Rows*s.Out)
	f := func() []float32 { LinearLoRAForwardSplit(y, x, xl, w, bias, a, b, s); return y }
	dx, dxl := make([]float32, len(x)), make([]float32, len(xl))
	dA, dB := make([]float32, len(a)), make([]float32, len(b))
	LinearLoRABackwardSplit(dx, dxl, dA, dB, xl, r, w, a, b, s)
	checkGrad(t, "split dx", rng, x, f, r, dx)
	checkGrad(t, "split dxl", rng, xl, f, r, dxl)
	checkGrad(t, "split dA", rng, a, f, r, dA)
	checkGrad(t, "split dB", rng, b, f, r, dB)
}

// TestGraphDropoutGradFiniteDiff checks gorgonia.Grad through the dropout path of the whole graph: the
// directional derivative of the loss along a random direction of every LoRA matrix, by central finite
// differences with the masks fixed (same step), against ⟨grad, direction⟩.
func TestGraphDropoutGradFiniteDiff(t *testing.T) {
	f := loadFixture(t)
	lora := loadPEFTAdapter(t, filepath.Join(fixtureDir, "adapter"))
	lora.Dropout = 0.3
	g, err := Build(f.weights, lora, f.b, f.t, ModeLoss)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.BuildGrad(); err != nil {
		t.Fatal(err)
	}
	g.SetStep(5)
	loss := func() float64 {
		if err := g.Run(f.batch); err != nil {
			t.Fatal(err)
		}
		v, err := Values(g.Loss)
		if err != nil {
			t.Fatal(err)
		}
		return float64(v[0])
	}
	l0 := loss()
	// Gradients of this run, and a random direction for every LoRA matrix (the graph's A and B values
	// share the adapter's slices, so perturbing those slices perturbs the graph's inputs).
	rng := rand.New(rand.NewSource(9))
	var params, dirs [][]float32
	var ana float64
	for _, l := range g.LoRA {
		for _, pg := range []struct {
			p    []float32
			grad *G.Node
		}{{lora.A[l.Module], l.GradA}, {lora.B[l.Module], l.GradB}} {
			grad, err := Values(pg.grad)
			if err != nil {
				t.Fatal(err)
			}
			u := randSlice(rng, len(pg.p), 1)
			for i := range u {
				ana += float64(grad[i]) * float64(u[i])
			}
			params, dirs = append(params, pg.p), append(dirs, u)
		}
	}
	shift := func(eps float32) {
		for k, p := range params {
			for i := range p {
				p[i] += eps * dirs[k][i]
			}
		}
	}
	// Central differences D(h) = (L(θ+hu) − L(θ−hu)) / 2h, Richardson-extrapolated (4·D(h/2) − D(h)) / 3
	// to cancel the O(h²) term, which the dropout scale 1/(1−p) makes large at h = 1e-2.
	central := func(h float32) float64 {
		shift(h)
		lp := loss()
		shift(-2 * h)
		lm := loss()
		shift(h)
		return (lp - lm) / (2 * float64(h))
	}
	const h = 4e-3
	num := (4*central(h/2) - central(h)) / 3
	// The float32 loss (≈6) resolves ≈5e-7 per evaluation, ≈3e-4 after dividing by 2h = 4e-3 and
	// extrapolating; the directional derivative over all 24 matrices is ≈1.3, hence 2e-3 relative.
	if e := math.Abs(num-ana) / math.Abs(ana); e > 2e-3 {
		t.Errorf("dropout graph: finite difference %.6g, gradient %.6g (relative error %.3g)", num, ana, e)
	}
	if l := loss(); l != l0 {
		t.Errorf("same step, same parameters: loss %v then %v", l0, l)
	}
	g.SetStep(6)
	if l := loss(); l == l0 {
		t.Error("a new step did not change the dropout masks")
	}
	t.Logf("loss %.5f, directional derivative %.6g (finite difference %.6g)", l0, ana, num)
}
