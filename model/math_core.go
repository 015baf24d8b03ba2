package model

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// This file holds the CPU reference math of the element-wise and per-row ops. Every function works on
// row-major float32 slices, writes only its outputs, and is what the GPU kernels are tested against.

// parallelFor splits [0, n) into contiguous chunks run on up to GOMAXPROCS goroutines.
func parallelFor(n int, body func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if workers > n {
		workers = n
	}
	if workers <= 1 || n < 2 {
		if n > 0 {
			body(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			body(lo, hi)
		}(lo, hi)
	}
	wg.Wait()
}

// EmbeddingForward gathers rows of the table: out[n, :] = table[ids[n], :].
// table [vocab, hidden], ids [n], out [n, hidden]. An id outside [0, vocab) is an error.
func EmbeddingForward(out, table []float32, ids []int32, vocab, hidden int) error {
	if err := checkIDs(ids, vocab); err != nil {
		return err
	}
	for n, id := range ids {
		copy(out[n*hidden:(n+1)*hidden], table[int(id)*hidden:(int(id)+1)*hidden])
	}
	return nil
}

// checkIDs reports the first token id outside [0, vocab), naming its position.
func checkIDs(ids []int32, vocab int) error {
	for n, id := range ids {
		if id < 0 || int(id) >= vocab {
			return fmt.Errorf("token id %d at position %d is outside the vocabulary [0, %d)", id, n, vocab)
		}
	}
	return nil
}

// RMSNormForward computes, per row, out = x · rsqrt(mean(x²) + eps) · w in float32 (HF Qwen2RMSNorm).
// x, out [rows, cols], w [cols].
func RMSNormForward(out, x, w []float32, rows, cols int, eps float32) {
	parallelFor(rows, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*cols : (r+1)*cols]
			or := out[r*cols : (r+1)*cols]
			inv := rmsInv(xr, eps)
			for i, v := range xr {
				or[i] = w[i] * (v * inv)
			}
		}
	})
}

// rmsInv is rsqrt(mean(x²) + eps), the sum taken in float64.
func rmsInv(x []float32, eps float32) float32 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	ms := float32(ss / float64(len(x)))
	return float32(1 / math.Sqrt(float64(ms+eps)))
}

// RMSNormBackward computes dx for y = x·r·w with r = rsqrt(mean(x²)+eps):
// g = dy·w, x̂ = x·r, dx = r · (g − x̂ · mean(g·x̂)). x, dy, dx [rows, cols], w [cols].
func RMSNormBackward(dx, x, w, dy []float32, rows, cols int, eps float32) {
	parallelFor(rows, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*cols : (r+1)*cols]
			dyr := dy[r*cols : (r+1)*cols]
			dxr := dx[r*cols : (r+1)*cols]
			inv := rmsInv(xr, eps)
			var dot float64
			for i := range xr {
				dot += float64(dyr[i]*w[i]) * float64(xr[i]*inv)
			}
			m := float32(dot / float64(cols))
			for i := range xr {
				dxr[i] = inv * (dyr[i]*w[i] - xr[i]*inv*m)
			}
		}
	})
}

// RopeInvFreq returns inv_freq[i] = 1 / θ^(2i/D) for i < D/2, in float32 as HF computes it.
func RopeInvFreq(headDim int, theta float32) []float32 {
	inv := make([]float32, headDim/2)
	for i := range inv {
		p := float32(math.Pow(float64(theta), float64(float32(2*i)/float32(headDim))))
		inv[i] = 1 / p
	}
	return inv
}

// RoPEForward applies rotary embeddings in the rotate_half layout to every head of every row:
// with a = pos·inv_freq[i] (float32), for i < D/2:
// out[i] = x[i]·cos a − x[i+D/2]·sin a, out[i+D/2] = x[i+D/2]·cos a + x[i]·sin a.
// x, out [rows, heads·D], positions [rows].
func RoPEForward(out, x []float32, positions []int32, rows, heads, headDim int, theta float32) {
	rope(out, x, positions, rows, heads, headDim, theta, 1)
}

// RoPEBackward is the transpose of RoPEForward, the rotation by −a: dx = RoPE_{−a}(dy).
// dy, dx [rows, heads·D], positions [rows].
func RoPEBackward(dx, dy []float32, positions []int32, rows, heads, headDim int, theta float32) {
	rope(dx, dy, positions, rows, heads, headDim, theta, -1)
}

func rope(out, x []float32, positions []int32, rows, heads, headDim int, theta float32, sign float32) {
	inv := RopeInvFreq(headDim, theta)
	half := headDim / 2
	width := heads * headDim
	parallelFor(rows, func(lo, hi int) {
		cos := make([]float32, half)
		sin := make([]float32, half)
		for r := lo; r < hi; r++ {
			pos := float32(positions[r])
			for i := range half {
				a := pos * inv[i]
				cos[i] = float32(math.Cos(float64(a)))
				sin[i] = sign * float32(math.Sin(float64(a)))
			}
			for h := range heads {
				base := r*width + h*headDim
				xs := x[base : base+headDim]
				os := out[base : base+headDim]
				for i := range half {
					x1, x2 := xs[i], xs[i+half]
					os[i] = x1*cos[i] - x2*sin[i]
					os[i+half] = x2*cos[i] + x1*sin[i]
				}
			}
		}
	})
}

// PositionsArange returns the positions HF uses when forward gets no position_ids: t for every row.
// Result [batch·seq].
func PositionsArange(batch, seq int) []int32 {
	p := make([]int32, batch*seq)
	for i := range p {
		p[i] = int32(i % seq)
	}
	return p
}

// PositionsFromMask returns the position_ids HF's generate computes for a padded batch:
// cumsum(mask) − 1 per row, and 1 at padding positions (masked_fill(mask == 0, 1)).
// mask [batch·seq] (1 token, 0 padding).
func PositionsFromMask(mask []int32, batch, seq int) []int32 {
	p := make([]int32, batch*seq)
	for b := range batch {
		var c int32
		for t := range seq {
			c += mask[b*seq+t]
			if mask[b*seq+t] == 0 {
				p[b*seq+t] = 1
			} else {
				p[b*seq+t] = c - 1
			}
		}
	}
	return p
}

// sigmoid is 1/(1+e^−x) in float32.
func sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

// SwiGLUForward computes out = silu(gate) · up with silu(g) = g·sigmoid(g). All [n].
func SwiGLUForward(out, gate, up []float32) {
	for i, g := range gate {
		out[i] = g * sigmoid(g) * up[i]
	}
}

// SwiGLUBackward computes dgate = dout·up·σ(g)·(1 + g·(1−σ(g))) and dup = dout·silu(g); either output may
// be nil. All [n].
func SwiGLUBackward(dgate, dup, gate, up, dout []float32) {
	for i, g := range gate {
		s := sigmoid(g)
		if dgate != nil {
			dgate[i] = dout[i] * up[i] * s * (1 + g*(1-s))
		}
		if dup != nil {
			dup[i] = dout[i] * g * s
		}
	}
}

// AddForward computes out = a + b. All [n].
func AddForward(out, a, b []float32) {
	for i := range out {
		out[i] = a[i] + b[i]
	}
}
