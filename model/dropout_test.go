package model

import (
	"math"
	"math/rand"
	"path/filepath"
	"strconv"
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
	seed := DropoutSeed(3, "model.layers.0.self_attn.q_proj.lora_dropout")
	DropoutForward(out, x, p, seed)
	kept := 0
	for i, v := range out {
		switch v {
		case 0:
		case x[i] / (1 - p):
			kept++
		default:
			t.Fatalf("element %d: %v, want 0 or x/(1-p) = %v", i, v, x[i]/(1-p))
		}
		if (v != 0) != DropoutKeep(seed, i, p) {
			t.Fatalf("element %d: DropoutForward and DropoutKeep disagree (DropoutForward kept it: %v)", i, v != 0)
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
// In ModeLossHeadRows too, where the last layer's dropouts read gathered rows.
func TestGraphDropoutGradFiniteDiff(t *testing.T) {
	for _, mode := range []Mode{ModeLoss, ModeLossHeadRows} {
		testGraphDropoutGradFiniteDiff(t, mode)
	}
}

func testGraphDropoutGradFiniteDiff(t *testing.T, mode Mode) {
	f := loadFixture(t)
	lora := loadPEFTAdapter(t, filepath.Join(fixtureDir, "adapter"))
	lora.Dropout = 0.3
	g, err := Build(f.weights, lora, f.b, f.t, mode)
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
	orig := make([][]float32, len(params))
	for k, p := range params {
		orig[k] = append([]float32(nil), p...)
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
		t.Errorf("mode %d: dropout graph: finite difference %.6g, gradient %.6g (relative error %.3g)", mode, num, ana, e)
	}
	for k, p := range params { // θ + hu − 2hu + hu is θ only up to rounding
		copy(p, orig[k])
	}
	if l := loss(); l != l0 {
		t.Errorf("mode %d: same step, same parameters: loss %v then %v", mode, l0, l)
	}
	g.SetStep(6)
	if l := loss(); l == l0 {
		t.Error("a new step did not change the dropout masks")
	}
	t.Logf("mode %d: loss %.5f, directional derivative %.6g (finite difference %.6g)", mode, l0, ana, num)
}

// TestDropoutHashPinned pins DropoutHash's bits (computed once by an independent Python transcription of
// its doc comment): kernels/dropout.cu computes the same hash, the GPU tests compare its masks with the
// CPU's, and a silent change here would change every training run's masks. The last two hash cases have an
// index past 2³² (its high word enters SplitMix64's input). float32(0.05) is a little above 0.05, hence
// ⌈p·2³²⌉ = 214748368, not 214748365.
func TestDropoutHashPinned(t *testing.T) {
	for _, c := range []struct {
		seed, i uint64
		want    uint32
	}{
		{0, 0, 0x8c2686e5},
		{0, 1, 0xb462080a},
		{1, 0, 0xec7c3310},
		{0x0123456789abcdef, 12345, 0x9822ab59},
		{0x0123456789abcdef, 1<<32 + 12345, 0xe4c0d57d},
		{^uint64(0), 1<<40 - 1, 0xabd0afc2},
	} {
		if c.i > math.MaxInt {
			continue // a 32-bit int
		}
		if got := DropoutHash(c.seed, int(c.i)); got != c.want {
			t.Errorf("DropoutHash(%#x, %#x) = %#08x, want %#08x", c.seed, c.i, got, c.want)
		}
	}
	for _, c := range []struct {
		p    float32
		want uint32
	}{{0, 0}, {0.5, 1 << 31}, {0.05, 214748368}, {1 - 1.0/(1<<24), 1<<32 - 1<<8}} {
		if got := DropoutThreshold(c.p); got != c.want {
			t.Errorf("DropoutThreshold(%g) = %d, want %d", c.p, got, c.want)
		}
	}
}

// dropoutBits is DropoutKeep(seed, i, p) for i in [from, from+n), as 0/1.
func dropoutBits(seed uint64, from, n int, p float32) []uint8 {
	m := make([]uint8, n)
	for k := range m {
		if DropoutKeep(seed, from+k, p) {
			m[k] = 1
		}
	}
	return m
}

// corrZ is the Pearson correlation of a[k] and b[k] over k times √n: about N(0, 1) when the two masks are
// independent (both not constant).
func corrZ(a, b []uint8) float64 {
	n := float64(len(a))
	var sa, sb, sab float64
	for k := range a {
		sa += float64(a[k])
		sb += float64(b[k])
		sab += float64(a[k] & b[k])
	}
	ma, mb := sa/n, sb/n
	return (sab/n - ma*mb) / math.Sqrt(ma*(1-ma)*mb*(1-mb)) * math.Sqrt(n)
}

// chi2Bound is a bound the χ² statistic of df degrees of freedom exceeds with probability below about 1e-6
// (mean + 7 standard deviations; the statistic's upper tail is heavier than normal, which 7σ covers).
func chi2Bound(df int) float64 { return float64(df) + 7*math.Sqrt(2*float64(df)) }

// TestDropoutMaskQuality checks the statistics of DropoutKeep's mask over 2²⁰ elements, with 5σ bounds
// (the draws are deterministic, so a passing hash always passes; the bounds decide what a broken one
// fails): the keep rate is 1 − p for p = 0.05 and 0.5; elements 1..3584 apart (3584: one row of the 7B's
// [N, 3584] inputs) are uncorrelated; the masks of different steps, modules and layers (DropoutSeed) are
// uncorrelated, and so are those of raw seeds one apart or one bit apart, also when the second mask is
// read at indices xored or shifted by the seeds' difference (a hash keyed only at its input gives
// index-permuted copies of one stream there); indices past 2³² draw fresh values; flipping any one bit of
// the seed changes half of the mask at p = 0.5; and 4 consecutive keeps at p = 0.5 and the top byte of the
// hash are uniform (χ²).
func TestDropoutMaskQuality(t *testing.T) {
	const n = 1 << 20
	const z5 = 5.0
	q := "model.layers.0.self_attn.q_proj.lora_dropout"
	seed := DropoutSeed(3, q)
	for _, p := range []float32{0.05, 0.5} {
		for step := range uint64(4) {
			m := dropoutBits(DropoutSeed(step, q), 0, n, p)
			kept := 0
			for _, v := range m {
				kept += int(v)
			}
			pp := float64(p)
			if z := (float64(kept) - n*(1-pp)) / math.Sqrt(n*pp*(1-pp)); math.Abs(z) > z5 {
				t.Errorf("p %g step %d: kept %d of %d (%.2fσ from 1−p)", p, step, kept, n, z)
			}
		}
		m := dropoutBits(seed, 0, n+3584, p)
		for _, lag := range []int{1, 2, 3, 7, 8, 16, 64, 3584} {
			if z := corrZ(m[:n], m[lag:lag+n]); math.Abs(z) > z5 {
				t.Errorf("p %g: elements %d apart correlated at %.2fσ", p, lag, z)
			}
		}
	}
	// Masks of other seeds at the same indices, and at indices moved by the seeds' difference.
	const p = 0.5
	base := dropoutBits(seed, 0, n, p)
	for _, c := range []struct {
		name  string
		other uint64
	}{
		{"next step", DropoutSeed(4, q)},
		{"k_proj", DropoutSeed(3, "model.layers.0.self_attn.k_proj.lora_dropout")},
		{"layer 1", DropoutSeed(3, "model.layers.1.self_attn.q_proj.lora_dropout")},
		{"seed+1", seed + 1},
		{"seed^1", seed ^ 1},
		{"seed^8", seed ^ 8},
		{"seed^2³¹", seed ^ 1<<31},
		{"seed^2³²", seed ^ 1<<32},
		{"seed^2⁶³", seed ^ 1<<63},
	} {
		if z := corrZ(base, dropoutBits(c.other, 0, n, p)); math.Abs(z) > z5 {
			t.Errorf("masks of seed and %s correlated at %.2fσ", c.name, z)
		}
	}
	for _, d := range []int{1, 8, 1 << 10} {
		xored := make([]uint8, n) // the mask of seed^d at index i^d
		for i := range xored {
			if DropoutKeep(seed^uint64(d), i^d, p) {
				xored[i] = 1
			}
		}
		if z := corrZ(base, xored); math.Abs(z) > z5 {
			t.Errorf("mask of seed at i and of seed^%d at i^%d correlated at %.2fσ", d, d, z)
		}
		if z := corrZ(base, dropoutBits(seed+uint64(d), d, n, p)); math.Abs(z) > z5 {
			t.Errorf("mask of seed at i and of seed+%d at i+%d correlated at %.2fσ", d, d, z)
		}
	}
	if past := uint64(1) << 32; strconv.IntSize == 64 {
		if z := corrZ(base, dropoutBits(seed, int(past), n, p)); math.Abs(z) > z5 {
			t.Errorf("mask at i and at i+2³² correlated at %.2fσ", z)
		}
	}
	// Every single-bit change of the seed redraws about half of a p = 0.5 mask (Binomial(n', ½)).
	const n1 = 1 << 16
	for bit := range 64 {
		other := dropoutBits(seed^1<<bit, 0, n1, p)
		diff := 0
		for k := range other {
			diff += int(other[k] ^ base[k])
		}
		if z := (float64(diff) - n1/2) / (math.Sqrt(n1) / 2); math.Abs(z) > z5 {
			t.Errorf("flipping seed bit %d changes %d of %d mask elements (%.2fσ from half)", bit, diff, n1, z)
		}
	}
	// χ² of the 16 patterns of 4 consecutive keeps, and of the hash's top byte.
	var pat [16]float64
	for k := 0; k+4 <= n; k += 4 {
		pat[base[k]|base[k+1]<<1|base[k+2]<<2|base[k+3]<<3]++
	}
	var top [256]float64
	for i := range n {
		top[DropoutHash(seed, i)>>24]++
	}
	for _, h := range []struct {
		name   string
		counts []float64
	}{{"4 consecutive keeps", pat[:]}, {"top byte of the hash", top[:]}} {
		var total, chi2 float64
		for _, c := range h.counts {
			total += c
		}
		e := total / float64(len(h.counts))
		for _, c := range h.counts {
			chi2 += (c - e) * (c - e) / e
		}
		if df := len(h.counts) - 1; chi2 > chi2Bound(df) {
			t.Errorf("%s: χ² %.1f with %d degrees of freedom, bound %.1f", h.name, chi2, df, chi2Bound(df))
		}
	}
}
