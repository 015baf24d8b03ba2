//go:build t2mcuda

package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/model"
)

func TestAttentionParity(t *testing.T) {
	d := cudatest.Device(t)
	cases := []struct {
		b, t, h, kvh, dim int
		pad               bool    // left padding on sequence 0, right padding on the last sequence
		noMask            bool    // pass no mask buffer (the CPU twin gets all ones)
		segs              [][]int // per row, lengths of sequences packed into it (segments 1, 2, ...); the rest padding
	}{
		{2, 45, 4, 2, 16, true, false, nil},     // the tiny fixture model's heads, T not a tile multiple
		{2, 130, 7, 1, 128, true, false, nil},   // Qwen2.5-7B's head dim and group size 7, three key tiles
		{1, 64, 2, 2, 64, false, true, nil},     // no GQA, no mask, exactly one tile
		{3, 97, 6, 3, 32, true, false, nil},     // head dim 32
		{1, 200, 14, 2, 128, false, false, nil}, // long enough that most tiles are off the diagonal
		// Packed rows: segments that start and end inside tiles, a one-token one, padding after the last.
		{1, 300, 7, 1, 128, false, false, [][]int{{70, 130, 45, 1, 47}}},
		{2, 150, 4, 2, 64, false, false, [][]int{{40, 64, 46}, {100, 20, 3}}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("B%d_T%d_H%d_KV%d_D%d_packed%d", c.b, c.t, c.h, c.kvh, c.dim, len(c.segs)), func(t *testing.T) {
			d := cudatest.Device(t)
			a := cudatest.Arena(t, d, 128<<20)
			side, err := NewSide(d)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(6, uint64(c.t*c.dim)))
			s := model.NewAttnShape(c.b, c.t, c.h, c.kvh, c.dim)
			dims := AttnDims{B: c.b, T: c.t, H: c.h, KVH: c.kvh, D: c.dim, Scale: s.Scale}
			nq, nkv := c.b*c.t*c.h*c.dim, c.b*c.t*c.kvh*c.dim
			q, k, v := ktRand(rng, nq, -2, 2), ktRand(rng, nkv, -2, 2), ktRand(rng, nkv, -1, 1)
			dout := ktRand(rng, nq, -1, 1)
			mask := make([]int32, c.b*c.t)
			for i := range mask {
				mask[i] = 1
			}
			for b, lens := range c.segs {
				p := 0
				for sg, n := range lens {
					for range n {
						mask[b*c.t+p] = int32(sg + 1)
						p++
					}
				}
				for ; p < c.t; p++ {
					mask[b*c.t+p] = 0
				}
			}
			if c.pad {
				for i := range 7 {
					mask[i] = 0 // left padding of sequence 0: its first queries see no key
				}
				for i := c.t - 11; i < c.t; i++ {
					mask[(c.b-1)*c.t+i] = 0 // right padding of the last sequence
				}
			}
			bq, bk, bv, bdo := ktBF16(t, d, a, q), ktBF16(t, d, a, k), ktBF16(t, d, a, v), ktBF16(t, d, a, dout)
			bm := cuda.Buffer{}
			if !c.noMask {
				bm = ktUp(t, d, a, mask)
			}
			bo := ktPoison(t, d, a, int64(nq)*2)
			blse := ktPoison(t, d, a, dims.lseBytes())
			if err := AttentionForward(d, bo, blse, bq, bk, bv, bm, dims); err != nil {
				t.Fatal(err)
			}
			want := make([]float32, nq)
			model.AttentionForward(want, q, k, v, mask, s)
			ktCompare(t, "attention out", ktGetBF16(t, d, bo, nq), want, tolBF16)

			wdq, wdk, wdv := make([]float32, nq), make([]float32, nkv), make([]float32, nkv)
			model.AttentionBackward(wdq, wdk, wdv, q, k, v, mask, dout, s)
			defer func(v bool) { attnSplitDQ = v }(attnSplitDQ)
			for _, way := range []string{"one walk", "split dQ", "split dQ beside"} {
				attnSplitDQ = way != "one walk"
				var sd *Side
				if way == "split dQ beside" {
					sd = side
				}
				scratch := ktPoison(t, d, a, AttentionBackwardScratchBytes(dims))
				bdq, bdk := ktPoison(t, d, a, int64(nq)*2), ktPoison(t, d, a, int64(nkv)*2)
				bdv := ktPoison(t, d, a, int64(nkv)*2)
				if err := AttentionBackward(d, sd, bdq, bdk, bdv, bq, bk, bv, bo, bdo, blse, bm, scratch, dims); err != nil {
					t.Fatal(err)
				}
				// The CPU twin recomputes from q, k, v; the GPU's dO·O term uses its own bf16 output, as it
				// would in training. Downloads go through the main stream: the call must have joined the side.
				ktCompare(t, "attention dq ("+way+")", ktGetBF16(t, d, bdq, nq), wdq, tolBF16)
				ktCompare(t, "attention dk ("+way+")", ktGetBF16(t, d, bdk, nkv), wdk, tolBF16)
				ktCompare(t, "attention dv ("+way+")", ktGetBF16(t, d, bdv, nkv), wdv, tolBF16)
			}
		})
	}
	_ = d
}

// BenchmarkAttention7B times the training attention at the 7B's shape and [4, 512] (28 query heads, 4 KV
// heads, D = 128, causal, no padding): AttentionForward and AttentionBackward (split dQ beside dK/dV on a side
// stream, as the machine runs it), 20 calls each between two events after one warm-up, logged with TFLOP/s
// of the causal products (forward 2 GEMMs, backward 5, over the T·(T+1)/2 visible pairs). scripts/bench/
// attention_anchor.py times torch's scaled_dot_product_attention on the same shapes:
//
//	(cd gpu/ops && ../../bin/gpu-ops.test -test.run '^$' -test.bench Attention7B -test.benchtime 1x -test.v)
func BenchmarkAttention7B(b *testing.B) {
	d := cudatest.Device(b)
	a := AttnDims{B: 4, T: 512, H: 28, KVH: 4, D: 128, Scale: 1 / float32(math.Sqrt(128))}
	alloc := benchAlloc(b, d, cudatest.Arena(b, d, 1<<30))
	q, k, v, o, dout := alloc(a.qBytes()), alloc(a.kvBytes()), alloc(a.kvBytes()), alloc(a.qBytes()), alloc(a.qBytes())
	dq, dk, dv, lse := alloc(a.qBytes()), alloc(a.kvBytes()), alloc(a.kvBytes()), alloc(a.lseBytes())
	scratch := alloc(AttentionBackwardScratchBytes(a))
	for _, buf := range []cuda.Buffer{q, k, v, dout} {
		if err := FillRandomBF16(d, buf, buf.Bytes/2, uint64(buf.Ptr), 1); err != nil {
			b.Fatal(err)
		}
	}
	side, err := NewSide(d)
	if err != nil {
		b.Fatal(err)
	}
	defer side.Close()
	pairs := float64(a.B*a.H) * float64(a.T) * float64(a.T+1) / 2
	for range b.N {
		for _, c := range []struct {
			name  string
			gemms float64
			call  func() error
		}{
			{"forward", 2, func() error { return AttentionForward(d, o, lse, q, k, v, cuda.Buffer{}, a) }},
			{"backward", 5, func() error {
				return AttentionBackward(d, side, dq, dk, dv, q, k, v, o, dout, lse, cuda.Buffer{}, scratch, a)
			}},
		} {
			if err := c.call(); err != nil {
				b.Fatal(err)
			}
			us := 1000 * cudatest.Millis(b, d, 20, c.call)
			b.Logf("attention %s [%d, %d] H %d KVH %d D %d causal: %.1f µs, %.0f TFLOP/s", c.name, a.B, a.T, a.H, a.KVH,
				a.D, us, c.gemms*2*pairs*float64(a.D)/us/1e6)
		}
	}
}
