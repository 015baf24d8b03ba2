package model

import (
	"math"
	"math/rand"
	"testing"

	"github.com/t2m/t2m/internal/numtest"
)

func randSlice(rng *rand.Rand, n int, std float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = std * float32(rng.NormFloat64())
	}
	return v
}

// checkGrad compares an analytic gradient with a central finite difference of L = Σ r·f(x) along
// random directions u: (L(x+εu) − L(x−εu)) / 2ε against ⟨grad, u⟩. f reads x each call.
// ε = 1e-2 on O(1) inputs keeps float32 rounding (≈1e-7·|L|/ε) and the O(ε²) truncation below the
// 2e-3 relative bound.
func checkGrad(t *testing.T, name string, rng *rand.Rand, x []float32, f func() []float32, r, grad []float32) {
	t.Helper()
	loss := func() float64 {
		var s float64
		for i, y := range f() {
			s += float64(r[i]) * float64(y)
		}
		return s
	}
	const eps = 1e-2
	for trial := range 3 {
		u := randSlice(rng, len(x), 1)
		orig := append([]float32(nil), x...)
		for i := range x {
			x[i] = orig[i] + eps*u[i]
		}
		lp := loss()
		for i := range x {
			x[i] = orig[i] - eps*u[i]
		}
		lm := loss()
		copy(x, orig)
		num := (lp - lm) / (2 * eps)
		var ana float64
		for i := range u {
			ana += float64(grad[i]) * float64(u[i])
		}
		if e := math.Abs(num-ana) / math.Max(math.Abs(ana), 1e-3); e > 2e-3 {
			t.Errorf("%s trial %d: finite difference %.6g, analytic %.6g (relative error %.3g)", name, trial, num, ana, e)
		}
	}
}

func TestRMSNormBackwardFiniteDiff(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	rows, cols := 3, 16
	x, w := randSlice(rng, rows*cols, 1), randSlice(rng, cols, 1)
	r := randSlice(rng, rows*cols, 1)
	out := make([]float32, rows*cols)
	f := func() []float32 { RMSNormForward(out, x, w, rows, cols, 1e-6); return out }
	dx := make([]float32, rows*cols)
	RMSNormBackward(dx, x, w, r, rows, cols, 1e-6)
	checkGrad(t, "rmsnorm dx", rng, x, f, r, dx)
}

func TestRoPEBackwardFiniteDiff(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	rows, heads, d := 4, 2, 8
	x := randSlice(rng, rows*heads*d, 1)
	pos := []int32{0, 3, 7, 100}
	r := randSlice(rng, len(x), 1)
	out := make([]float32, len(x))
	f := func() []float32 { RoPEForward(out, x, pos, rows, heads, d, 10000); return out }
	dx := make([]float32, len(x))
	RoPEBackward(dx, r, pos, rows, heads, d, 10000)
	checkGrad(t, "rope dx", rng, x, f, r, dx)
}

func TestRoPEKnownRotation(t *testing.T) {
	// One head, D=2: inv_freq = [1], so position p rotates (x1, x2) by p radians.
	x := []float32{1, 0, 0, 1}
	out := make([]float32, 4)
	RoPEForward(out, x, []int32{1, 2}, 2, 1, 2, 10000)
	want := []float32{float32(math.Cos(1)), float32(math.Sin(1)), -float32(math.Sin(2)), float32(math.Cos(2))}
	if numtest.MaxAbsRel(out, want) > 1e-6 {
		t.Errorf("rope(1,0;p=1),(0,1;p=2) = %v, want %v", out, want)
	}
}

func TestSwiGLUBackwardFiniteDiff(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	n := 32
	gate, up, r := randSlice(rng, n, 2), randSlice(rng, n, 1), randSlice(rng, n, 1)
	out := make([]float32, n)
	f := func() []float32 { SwiGLUForward(out, gate, up); return out }
	dg, du := make([]float32, n), make([]float32, n)
	SwiGLUBackward(dg, du, gate, up, r)
	checkGrad(t, "swiglu dgate", rng, gate, f, r, dg)
	checkGrad(t, "swiglu dup", rng, up, f, r, du)
}

func TestAttentionBackwardFiniteDiff(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	s := NewAttnShape(2, 5, 4, 2, 4)
	n := s.Batch * s.Seq
	q, k, v := randSlice(rng, n*s.QWidth, 1), randSlice(rng, n*s.KVWidth, 1), randSlice(rng, n*s.KVWidth, 1)
	mask := []int32{1, 1, 1, 1, 1, 0, 1, 1, 1, 0} // row 1: one left pad (an all-masked query) and one right pad
	r := randSlice(rng, n*s.QWidth, 1)
	out := make([]float32, n*s.QWidth)
	f := func() []float32 { AttentionForward(out, q, k, v, mask, s); return out }
	dq, dk, dv := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
	AttentionBackward(dq, dk, dv, q, k, v, mask, r, s)
	checkGrad(t, "attention dq", rng, q, f, r, dq)
	checkGrad(t, "attention dk", rng, k, f, r, dk)
	checkGrad(t, "attention dv", rng, v, f, r, dv)
	// The all-masked query (batch 1, position 0) is zero.
	for _, x := range f()[s.Seq*s.QWidth : (s.Seq+1)*s.QWidth] {
		if x != 0 {
			t.Fatalf("all-masked query row is not zero: %v", x)
		}
	}
}

// TestAttentionMatchesNaive compares with a direct per-head implementation (repeat_kv then plain causal
// softmax attention) on a batch without padding.
func TestAttentionMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	s := NewAttnShape(1, 6, 6, 2, 4)
	n := s.Seq
	q, k, v := randSlice(rng, n*s.QWidth, 1), randSlice(rng, n*s.KVWidth, 1), randSlice(rng, n*s.KVWidth, 1)
	mask := []int32{1, 1, 1, 1, 1, 1}
	out := make([]float32, n*s.QWidth)
	AttentionForward(out, q, k, v, mask, s)
	want := make([]float32, n*s.QWidth)
	for h := range s.Heads {
		kv := h / 3 // 6 heads over 2 KV heads: heads 0-2 read KV 0, 3-5 read KV 1
		for i := range n {
			w := make([]float64, i+1)
			var mx, sum float64 = math.Inf(-1), 0
			for j := 0; j <= i; j++ {
				var d float64
				for e := range s.HeadDim {
					d += float64(q[i*s.QWidth+h*4+e]) * float64(k[j*s.KVWidth+kv*4+e])
				}
				w[j] = d / 2 // 1/sqrt(4)
				mx = math.Max(mx, w[j])
			}
			for j := range w {
				w[j] = math.Exp(w[j] - mx)
				sum += w[j]
			}
			for e := range s.HeadDim {
				var o float64
				for j := range w {
					o += w[j] / sum * float64(v[j*s.KVWidth+kv*4+e])
				}
				want[i*s.QWidth+h*4+e] = float32(o)
			}
		}
	}
	if e := numtest.MaxAbsRel(out, want); e > 1e-6 {
		t.Errorf("attention vs naive: max relative error %.3g", e)
	}
}

func TestLinearLoRABackwardFiniteDiff(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	s := LinearShape{Rows: 5, In: 8, Out: 6, Rank: 3, Scaling: 1.5}
	x, w, bias := randSlice(rng, s.Rows*s.In, 1), randSlice(rng, s.Out*s.In, 0.3), randSlice(rng, s.Out, 0.1)
	a, b := randSlice(rng, s.Rank*s.In, 0.3), randSlice(rng, s.Out*s.Rank, 0.3)
	r := randSlice(rng, s.Rows*s.Out, 1)
	y := make([]float32, s.Rows*s.Out)
	f := func() []float32 { LinearLoRAForward(y, x, w, bias, a, b, s); return y }
	dx, dA, dB := make([]float32, len(x)), make([]float32, len(a)), make([]float32, len(b))
	LinearLoRABackward(dx, dA, dB, x, r, w, a, b, s)
	checkGrad(t, "linear dx", rng, x, f, r, dx)
	checkGrad(t, "linear dA", rng, a, f, r, dA)
	checkGrad(t, "linear dB", rng, b, f, r, dB)
}

func TestLMHeadCrossEntropyBackwardFiniteDiff(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	s := CEShape{Batch: 2, Seq: 4, Hidden: 6, Vocab: 11, IgnoreIndex: -100}
	h, w := randSlice(rng, 8*6, 1), randSlice(rng, 11*6, 0.5)
	labels := []int32{-100, -100, 3, 7, -100, 10, 0, -100}
	items := float32(CountCompletionTokens(labels, 2, 4)) // rows (0,1)→3, (0,2)→7, (1,0)→10, (1,1)→0
	if items != 4 {
		t.Fatalf("CountCompletionTokens = %v, want 4", items)
	}
	f := func() []float32 {
		l, err := LMHeadCrossEntropyForward(h, w, labels, items, s)
		if err != nil {
			t.Fatal(err)
		}
		return []float32{l}
	}
	dh := make([]float32, len(h))
	if err := LMHeadCrossEntropyBackward(dh, h, w, labels, items, 0.7, s); err != nil {
		t.Fatal(err)
	}
	checkGrad(t, "lm_head CE dh", rng, h, f, []float32{0.7}, dh)
	// Rows whose shifted label is ignored get no gradient: (0,0) predicts labels[1] = −100, (0,3) is last.
	for _, row := range []int{0, 3, 7} {
		for _, g := range dh[row*6 : (row+1)*6] {
			if g != 0 {
				t.Fatalf("row %d has an ignored target but gradient %v", row, g)
			}
		}
	}
	labels[2] = 11
	if _, err := LMHeadCrossEntropyForward(h, w, labels, items, s); err == nil {
		t.Error("label 11 with vocab 11 was accepted")
	}
}

func TestPositions(t *testing.T) {
	got := PositionsFromMask([]int32{0, 0, 1, 1, 1, 1, 1, 0}, 2, 4)
	want := []int32{1, 1, 0, 1, 0, 1, 2, 1}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("PositionsFromMask = %v, want %v", got, want)
		}
	}
}
