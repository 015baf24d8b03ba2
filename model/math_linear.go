package model

import (
	"fmt"
	"math"

	"github.com/t2m/t2m/internal/rng"
)

// LinearShape gives the sizes of a linear layer with an optional LoRA branch.
type LinearShape struct {
	Rows, In, Out int     // N (= B·T), input and output features
	Rank          int     // LoRA rank r; 0 means no LoRA branch
	Scaling       float32 // LoRA scaling (alpha/r, or alpha/√r with rsLoRA)
}

// dot is Σ a_i·b_i in float32.
func dot(a, b []float32) float32 {
	var s float32
	for i, x := range a {
		s += x * b[i]
	}
	return s
}

// axpy is y += α·x.
func axpy(alpha float32, x, y []float32) {
	for i, v := range x {
		y[i] += alpha * v
	}
}

// LinearLoRAForward computes y = x·Wᵀ + bias + scaling·(x·Aᵀ)·Bᵀ (HF nn.Linear plus PEFT LoRA without
// dropout). x [Rows, In], w [Out, In], bias [Out] or nil, a [Rank, In], b [Out, Rank], y [Rows, Out].
func LinearLoRAForward(y, x, w, bias, a, b []float32, s LinearShape) {
	LinearLoRAForwardSplit(y, x, x, w, bias, a, b, s)
}

// LinearLoRAForwardSplit is LinearLoRAForward with a separate LoRA input xl (dropout(x) in training):
// y = x·Wᵀ + bias + scaling·(xl·Aᵀ)·Bᵀ. x, xl [Rows, In].
func LinearLoRAForwardSplit(y, x, xl, w, bias, a, b []float32, s LinearShape) {
	parallelFor(s.Rows, func(lo, hi int) {
		t := make([]float32, s.Rank)
		for n := lo; n < hi; n++ {
			xn := x[n*s.In : (n+1)*s.In]
			yn := y[n*s.Out : (n+1)*s.Out]
			for o := range yn {
				yn[o] = dot(xn, w[o*s.In:(o+1)*s.In])
				if bias != nil {
					yn[o] += bias[o]
				}
			}
			if s.Rank == 0 {
				continue
			}
			xln := xl[n*s.In : (n+1)*s.In]
			for r := range t {
				t[r] = dot(xln, a[r*s.In:(r+1)*s.In])
			}
			for o := range yn {
				yn[o] += s.Scaling * dot(t, b[o*s.Rank:(o+1)*s.Rank])
			}
		}
	})
}

// LinearLoRABackward computes the gradients of LinearLoRAForward; any of dx, dA, dB may be nil:
// u = dy·B [Rows, Rank], t = x·Aᵀ [Rows, Rank],
// dx = dy·W + scaling·u·A [Rows, In], dA = scaling·uᵀ·x [Rank, In], dB = scaling·dyᵀ·t [Out, Rank].
// The frozen W and bias get no gradient.
func LinearLoRABackward(dx, dA, dB, x, dy, w, a, b []float32, s LinearShape) {
	linearLoRABackward(dx, nil, dA, dB, x, dy, w, a, b, s, true)
}

// LinearLoRABackwardSplit computes the gradients of LinearLoRAForwardSplit; any output may be nil:
// dx = dy·W (base path only), dxl = scaling·(dy·B)·A, dA = scaling·(dy·B)ᵀ·xl, dB = scaling·dyᵀ·(xl·Aᵀ).
func LinearLoRABackwardSplit(dx, dxl, dA, dB, xl, dy, w, a, b []float32, s LinearShape) {
	linearLoRABackward(dx, dxl, dA, dB, xl, dy, w, a, b, s, false)
}

// linearLoRABackward: x is the LoRA input; merged adds the LoRA input gradient into dx.
func linearLoRABackward(dx, dxl, dA, dB, x, dy, w, a, b []float32, s LinearShape, merged bool) {
	var u, t []float32
	if s.Rank > 0 {
		u = make([]float32, s.Rows*s.Rank) // [Rows, Rank]
		t = make([]float32, s.Rows*s.Rank) // [Rows, Rank]
		parallelFor(s.Rows, func(lo, hi int) {
			for n := lo; n < hi; n++ {
				dyn := dy[n*s.Out : (n+1)*s.Out]
				for r := range s.Rank {
					var acc float32
					for o, g := range dyn {
						acc += g * b[o*s.Rank+r]
					}
					u[n*s.Rank+r] = acc
					if x != nil {
						t[n*s.Rank+r] = dot(x[n*s.In:(n+1)*s.In], a[r*s.In:(r+1)*s.In])
					}
				}
			}
		})
	}
	loraInput := func(dst []float32, n int) {
		for r := range s.Rank {
			axpy(s.Scaling*u[n*s.Rank+r], a[r*s.In:(r+1)*s.In], dst)
		}
	}
	if dx != nil {
		parallelFor(s.Rows, func(lo, hi int) {
			for n := lo; n < hi; n++ {
				dxn := dx[n*s.In : (n+1)*s.In]
				clear(dxn)
				for o, g := range dy[n*s.Out : (n+1)*s.Out] {
					if g != 0 {
						axpy(g, w[o*s.In:(o+1)*s.In], dxn)
					}
				}
				if merged {
					loraInput(dxn, n)
				}
			}
		})
	}
	if dxl != nil {
		parallelFor(s.Rows, func(lo, hi int) {
			for n := lo; n < hi; n++ {
				dxln := dxl[n*s.In : (n+1)*s.In]
				clear(dxln)
				loraInput(dxln, n)
			}
		})
	}
	if dA != nil {
		parallelFor(s.Rank, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				dar := dA[r*s.In : (r+1)*s.In]
				clear(dar)
				for n := range s.Rows {
					axpy(s.Scaling*u[n*s.Rank+r], x[n*s.In:(n+1)*s.In], dar)
				}
			}
		})
	}
	if dB != nil {
		parallelFor(s.Out, func(lo, hi int) {
			for o := lo; o < hi; o++ {
				dbo := dB[o*s.Rank : (o+1)*s.Rank]
				clear(dbo)
				for n := range s.Rows {
					g := s.Scaling * dy[n*s.Out+o]
					axpy(g, t[n*s.Rank:(n+1)*s.Rank], dbo)
				}
			}
		})
	}
}

// DropoutSeed is the mask seed of the dropout named name at training step step:
// rng.SplitMix64(step ⊕ FNV-1a-64(name)), so each module draws an independent mask every step.
func DropoutSeed(step uint64, name string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * 1099511628211
	}
	return rng.SplitMix64(step ^ h)
}

// DropoutHash is element i's 32-bit draw under seed: Wellons' lowbias32 integer hash (hash-prospector:
// x ^= x>>16, x *= 0x7feb352d, x ^= x>>15, x *= 0x846ca68b, x ^= x>>16) of the Weyl sequence
// x = lo32(i)·m + k mod 2³², whose odd multiplier m = hi32(z) | 1 and offset k = lo32(z) come from
// z = rng.SplitMix64(seed ⊕ hi32(i)·0x9e3779b97f4a7c15). The per-seed multiplier keeps the masks of two
// seeds from being index-shifted or index-permuted copies of one stream (what a key added to or xored
// into the input gives), SplitMix64 makes seeds one apart or one bit apart as unrelated as any two, and
// hi32(i) in z gives indices past 2³² fresh values. z is the same for every i of a 2³²-aligned range, so
// a GPU thread computes it once for its 8 elements and each element costs 32-bit integer operations only
// (one add, two multiplies): kernels/dropout.cu computes it bit for bit (its CUDA copy).
func DropoutHash(seed uint64, i int) uint32 {
	m, k := dropoutWeyl(seed, uint64(i)>>32)
	return lowbias32(uint32(i)*m + k)
}

// dropoutWeyl is DropoutHash's multiplier m (odd) and offset k for the indices whose high word is hi.
func dropoutWeyl(seed, hi uint64) (m, k uint32) {
	z := rng.SplitMix64(seed ^ hi*0x9e3779b97f4a7c15)
	return uint32(z>>32) | 1, uint32(z)
}

// lowbias32 is Wellons' 32-bit integer hash (two xorshift-multiply rounds and a final xorshift).
func lowbias32(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x7feb352d
	x ^= x >> 15
	x *= 0x846ca68b
	x ^= x >> 16
	return x
}

// DropoutThreshold is the smallest draw DropoutKeep keeps at drop probability p ∈ [0, 1): ⌈p·2³²⌉ (exact in
// float64). An element is kept with probability 1 − ⌈p·2³²⌉/2³², within 2⁻³² of 1 − p; p = 0 keeps all.
func DropoutThreshold(p float32) uint32 {
	return uint32(math.Ceil(float64(p) * (1 << 32)))
}

// DropoutKeep reports whether element i (its flat index) survives dropout with probability p under seed:
// DropoutHash(seed, i) ≥ DropoutThreshold(p), a counter-based draw a GPU thread reproduces from (seed, i).
func DropoutKeep(seed uint64, i int, p float32) bool {
	return DropoutHash(seed, i) >= DropoutThreshold(p)
}

// DropoutForward computes out_i = x_i / (1−p) where DropoutKeep(seed, i, p), else 0 (inverted dropout,
// as torch.nn.Dropout in training), in float32. Its backward is the same function applied to dy. All [n].
func DropoutForward(out, x []float32, p float32, seed uint64) {
	scale := 1 / (1 - p)
	keepFrom := DropoutThreshold(p)
	hi, m, k := uint64(0), uint32(0), uint32(0)
	for i, v := range x {
		if h := uint64(i) >> 32; i == 0 || h != hi { // DropoutHash's Weyl sequence, once per high index word
			hi = h
			m, k = dropoutWeyl(seed, hi)
		}
		if lowbias32(uint32(i)*m+k) >= keepFrom {
			out[i] = v * scale
		} else {
			out[i] = 0
		}
	}
}

// CEShape gives the sizes of the fused lm_head + cross-entropy.
type CEShape struct {
	Batch, Seq    int // B, T; rows are b·T + t
	Hidden, Vocab int // H, V
	IgnoreIndex   int32
}

// ceTarget is the label that row (b,t) predicts: labels[b, t+1], or IgnoreIndex for the last position.
func ceTarget(labels []int32, s CEShape, row int) int32 {
	if row%s.Seq == s.Seq-1 {
		return s.IgnoreIndex
	}
	return labels[row+1]
}

// CountCompletionTokens is the number of rows whose shifted label is not ignored: the divisor HF uses
// for one micro-batch (sum it over the micro-batches of an accumulation window for num_items_in_batch).
func CountCompletionTokens(labels []int32, batch, seq int) int {
	s := CEShape{Batch: batch, Seq: seq, IgnoreIndex: -100}
	n := 0
	for row := range batch * seq {
		if ceTarget(labels, s, row) != s.IgnoreIndex {
			n++
		}
	}
	return n
}

// rowLogits fills l [V] with W·h_row in float32.
func rowLogits(l, w, h []float32, s CEShape) {
	for v := range l {
		l[v] = dot(h, w[v*s.Hidden:(v+1)*s.Hidden])
	}
}

// logSumExp is log Σ exp(l) computed with the max subtracted, in float64.
func logSumExp(l []float32) float64 {
	mx := float32(math.Inf(-1))
	for _, v := range l {
		mx = max(mx, v)
	}
	var sum float64
	for _, v := range l {
		sum += math.Exp(float64(v - mx))
	}
	return math.Log(sum) + float64(mx)
}

// LMHeadCrossEntropyForward is the completion-only causal LM loss fused with lm_head:
// logits_n = W·h_n (fp32), target_n = labels[b, t+1] (none for t = T−1), rows whose target is IgnoreIndex
// (−100) are skipped, loss = Σ_n (logsumexp(logits_n) − logits_n[target_n]) / numItems.
// numItems is the number of completion tokens of the whole effective batch (HF num_items_in_batch).
// h [B·T, H], w [V, H], labels [B·T] unshifted as in HF. A target outside [0, V) is an error.
func LMHeadCrossEntropyForward(h, w []float32, labels []int32, numItems float32, s CEShape) (float32, error) {
	if err := checkTargets(labels, s); err != nil {
		return 0, err
	}
	rows := s.Batch * s.Seq
	nll := make([]float64, rows)
	parallelFor(rows, func(lo, hi int) {
		l := make([]float32, s.Vocab)
		for n := lo; n < hi; n++ {
			tgt := ceTarget(labels, s, n)
			if tgt == s.IgnoreIndex {
				continue
			}
			rowLogits(l, w, h[n*s.Hidden:(n+1)*s.Hidden], s)
			nll[n] = logSumExp(l) - float64(l[tgt])
		}
	})
	var sum float64
	for _, v := range nll {
		sum += v
	}
	return float32(sum / float64(numItems)), nil
}

// LMHeadCrossEntropyBackward computes dh [B·T, H] of the loss above times dloss:
// dh_n = dloss/numItems · Σ_v (softmax(logits_n)_v − [v = target_n]) · W_v, and 0 for ignored rows.
func LMHeadCrossEntropyBackward(dh, h, w []float32, labels []int32, numItems, dloss float32, s CEShape) error {
	if err := checkTargets(labels, s); err != nil {
		return err
	}
	coef := dloss / numItems
	parallelFor(s.Batch*s.Seq, func(lo, hi int) {
		l := make([]float32, s.Vocab)
		for n := lo; n < hi; n++ {
			dhn := dh[n*s.Hidden : (n+1)*s.Hidden]
			clear(dhn)
			tgt := ceTarget(labels, s, n)
			if tgt == s.IgnoreIndex {
				continue
			}
			rowLogits(l, w, h[n*s.Hidden:(n+1)*s.Hidden], s)
			lse := logSumExp(l)
			for v, x := range l {
				g := float32(math.Exp(float64(x) - lse))
				if int32(v) == tgt {
					g -= 1
				}
				axpy(coef*g, w[v*s.Hidden:(v+1)*s.Hidden], dhn)
			}
		}
	})
	return nil
}

func checkTargets(labels []int32, s CEShape) error {
	for n := range s.Batch * s.Seq {
		tgt := ceTarget(labels, s, n)
		if tgt != s.IgnoreIndex && (tgt < 0 || int(tgt) >= s.Vocab) {
			return fmt.Errorf("label %d at row %d, position %d is outside the vocabulary [0, %d) and is not %d",
				tgt, n/s.Seq, n%s.Seq+1, s.Vocab, s.IgnoreIndex)
		}
	}
	return nil
}
