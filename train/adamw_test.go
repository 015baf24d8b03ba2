package train

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// Two AdamW steps on one value, computed by hand with torch's formulas (lr 0.1, wd 0.01):
// step 1, g = 0.5: p = 1·(1−0.001) − 0.1/0.1 · 0.05/(√0.00025/√0.001 + 1e-8) = 0.899000002;
// step 2, g = −1: m = −0.055, v = 0.00124975, p = 0.899000002·0.999 + 0.1/0.19 · 0.055/(√v/√0.001999 + 1e-8)
// = 0.93471135. A second parameter without gradient only decays. Tolerance: float32 rounding (1e-6).
func TestAdamWHandComputed(t *testing.T) {
	params := [][]float32{{1}, {2}}
	opt := NewAdamW([]int{1, 1}, 0.01)
	if err := opt.Update(params, [][]float32{{0.5}, {0}}, 0.1); err != nil {
		t.Fatal(err)
	}
	if got := params[0][0]; math.Abs(float64(got)-0.899000002) > 1e-6 {
		t.Errorf("after step 1: p = %.9f, want 0.899000002", got)
	}
	if err := opt.Update(params, [][]float32{{-1}, {0}}, 0.1); err != nil {
		t.Fatal(err)
	}
	if got := params[0][0]; math.Abs(float64(got)-0.9347113542) > 1e-6 {
		t.Errorf("after step 2: p = %.9f, want 0.934711354", got)
	}
	if got := opt.M[0][0]; math.Abs(float64(got)+0.055) > 1e-7 {
		t.Errorf("m = %v, want -0.055", got)
	}
	if got := opt.V[0][0]; math.Abs(float64(got)-0.00124975) > 1e-9 {
		t.Errorf("v = %v, want 0.00124975", got)
	}
	if got, want := params[1][0], float32(2*0.999*0.999); math.Abs(float64(got-want)) > 1e-6 {
		t.Errorf("parameter without gradient: %v, want %v (weight decay only)", got, want)
	}
	if opt.Step != 2 {
		t.Errorf("step = %d, want 2", opt.Step)
	}
	if err := opt.Update([][]float32{{1, 2}}, [][]float32{{1, 2}}, 0.1); err == nil {
		t.Error("mismatched parameter count: no error")
	}
}

func TestClipGradNorm(t *testing.T) {
	g := [][]float32{{3}, {4}} // norm 5
	if n := ClipGradNorm(g, 1); math.Abs(n-5) > 1e-9 {
		t.Errorf("norm = %v, want 5", n)
	}
	coef := 1 / (5 + 1e-6)
	if math.Abs(float64(g[0][0])-3*coef) > 1e-6 || math.Abs(float64(g[1][0])-4*coef) > 1e-6 {
		t.Errorf("clipped to %v, want [%v %v]", g, 3*coef, 4*coef)
	}
	small := [][]float32{{0.3, 0.4}}
	ClipGradNorm(small, 1)
	if small[0][0] != 0.3 || small[0][1] != 0.4 {
		t.Errorf("a norm below the limit changed the gradient: %v", small)
	}
}

// HF's cosine schedule with warmup: 10 total updates, warmup ceil(10·0.05) = 1.
func TestScheduleCosineWarmup(t *testing.T) {
	w := WarmupSteps(10, 0.05)
	if w != 1 {
		t.Fatalf("warmup = %d, want 1", w)
	}
	s := Schedule{Peak: 2e-4, Warmup: w, Total: 10, Kind: "cosine"}
	want := func(k int) float64 { return 2e-4 * 0.5 * (1 + math.Cos(math.Pi*float64(k-1)/9)) }
	if s.LR(0) != 0 {
		t.Errorf("LR(0) = %v, want 0 (first warmup update)", s.LR(0))
	}
	for k := 1; k < 10; k++ {
		if math.Abs(s.LR(k)-want(k)) > 1e-15 {
			t.Errorf("LR(%d) = %v, want %v", k, s.LR(k), want(k))
		}
	}
	if s.LR(1) != 2e-4 {
		t.Errorf("LR(1) = %v, want the peak", s.LR(1))
	}
	lin := Schedule{Peak: 1, Warmup: 2, Total: 6, Kind: "linear"}
	for k, w := range []float64{0, 0.5, 1, 0.75, 0.5, 0.25} {
		if math.Abs(lin.LR(k)-w) > 1e-15 {
			t.Errorf("linear LR(%d) = %v, want %v", k, lin.LR(k), w)
		}
	}
}

// TestAdamWParallelMatchesElementwise checks the parallel update over several chunks: AdamW is
// element-wise, so updating a long parameter at once must give the same bits as updating each value as
// a parameter of its own, on any number of cores.
func TestAdamWParallelMatchesElementwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	sizes := []int{3*chunk + 5, 17, chunk}
	params, grads := make([][]float32, len(sizes)), make([][]float32, len(sizes))
	for i, n := range sizes {
		params[i], grads[i] = make([]float32, n), make([]float32, n)
		for j := range n {
			params[i][j], grads[i][j] = float32(rng.NormFloat64()), float32(rng.NormFloat64()*1e-2)
		}
	}
	for _, procs := range []int{1, 2, 4} {
		prev := runtime.GOMAXPROCS(procs)
		opt := NewAdamW(sizes, 0.01)
		got := make([][]float32, len(params))
		for i := range params {
			got[i] = slices.Clone(params[i])
		}
		for range 3 {
			if err := opt.Update(got, grads, 2e-4); err != nil {
				t.Fatal(err)
			}
		}
		runtime.GOMAXPROCS(prev)
		for i := range params {
			for _, j := range []int{0, 1, chunk - 1, chunk, len(params[i]) - 1} {
				if j >= len(params[i]) {
					continue
				}
				one := NewAdamW([]int{1}, 0.01)
				p := []float32{params[i][j]}
				for range 3 {
					if err := one.Update([][]float32{p}, [][]float32{{grads[i][j]}}, 2e-4); err != nil {
						t.Fatal(err)
					}
				}
				if p[0] != got[i][j] || one.M[0][0] != opt.M[i][j] || one.V[0][0] != opt.V[i][j] {
					t.Fatalf("GOMAXPROCS %d, param %d[%d]: %v (m %v v %v), element-wise %v (m %v v %v)",
						procs, i, j, got[i][j], opt.M[i][j], opt.V[i][j], p[0], one.M[0][0], one.V[0][0])
				}
			}
		}
	}
}

// TestClipGradNormSameBitsOnAnyCoreCount checks the chunked norm against a serial float64 sum and that
// the clipped gradients are the same bits whatever GOMAXPROCS is.
func TestClipGradNormSameBitsOnAnyCoreCount(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	base := [][]float32{make([]float32, 2*chunk+9), make([]float32, 100)}
	var ss float64
	for _, g := range base {
		for j := range g {
			g[j] = float32(rng.NormFloat64())
			ss += float64(g[j]) * float64(g[j])
		}
	}
	var first [][]float32
	for _, procs := range []int{1, 2, 3} {
		prev := runtime.GOMAXPROCS(procs)
		g := [][]float32{slices.Clone(base[0]), slices.Clone(base[1])}
		norm := ClipGradNorm(g, 1.0)
		runtime.GOMAXPROCS(prev)
		if math.Abs(norm-math.Sqrt(ss)) > 1e-12*math.Sqrt(ss) {
			t.Fatalf("norm %v, serial %v", norm, math.Sqrt(ss))
		}
		if first == nil {
			first = g
			continue
		}
		for i := range g {
			if !slices.Equal(g[i], first[i]) {
				t.Fatalf("GOMAXPROCS %d: clipped gradients differ from GOMAXPROCS 1", procs)
			}
		}
	}
}

// BenchmarkAdamW7B is one host update of the 7B model's LoRA r=8 parameters (15,138,816 values), with
// the gradient clipping before it.
func BenchmarkAdamW7B(b *testing.B) {
	const n = 15138816
	p, g := [][]float32{make([]float32, n)}, [][]float32{make([]float32, n)}
	for j := range g[0] {
		g[0][j] = float32(j%7) * 1e-3
	}
	opt := NewAdamW([]int{n}, 0)
	for b.Loop() {
		ClipGradNorm(g, 1.0)
		if err := opt.Update(p, g, 2e-4); err != nil {
			b.Fatal(err)
		}
	}
}
