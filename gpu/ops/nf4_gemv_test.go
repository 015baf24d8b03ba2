//go:build t2mcuda

package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/quant"
)

// TestNF4GEMVParity compares NF4GEMVFused with its CPU twin (quant's Dequantize rounded to bf16, then x·Wᵀ in
// float64, + bias + s·h·Bᵀ) for bf16 and fp32 outputs, with and without accumulation into y (beta = 1), bare,
// with a bias, and with a bias and a LoRA term. Shapes: [37, 200] (in not a multiple of 32: the one-warp-per-
// output nf4_gemv, 1..8 rows); [64, 3584], [37, 96] and [40, 18944] through the tensor-core kernels (1..32
// rows: each of n8, n16 and n32, rows not a multiple of 8; 37 outputs not a multiple of the 16 per block; 96
// inputs not a multiple of the 128 per chunk, so the last chunk is partial; 18944 = the 7B's intermediate
// size, 148 chunks over the 8 warps of a block); [37, 192] with three 64-input groups for fewer than the 8
// warps; [4240, 256], more output tiles than nf4U8Tiles (the others have fewer), so the factored kernels
// with 4 groups in flight per warp rather than 8. Where in is a multiple of 64 (1..32 rows), also the
// factored kernels (nf4_gemv_lv_*) against their twin (bf16(level) · absmax as the weight), which must give
// other fp32 outputs than the exact ones, and their _v builds where the shape allows them (4-byte absmax
// loads: [64, 3584], [40, 18944], [4240, 256]), which must give the same bits as the plain ones. From 33 to
// 96 rows where in is a multiple of 256 (exact weights): nf4_gemm_n48/_n64/_n96, and on Hopper also
// nf4_wgmma_n48/_n64/_n96 (which must give other fp32 outputs: another order of the sums), each case with no work room (one block per output tile over all inputs) and with room (blocks that
// split the inputs, their partial sums added by nf4_gemm_reduce); [300, 1024] adds several output tiles, the
// last partial, with splits.
// fp32 output: the sums differ only in order (1e-5 of the row's magnitude); bf16: one rounding more.
func TestNF4GEMVParity(t *testing.T) {
	d := cudatest.Device(t)
	defer func(f, v, w bool) { nf4GEMVFactored, nf4GEMVVec, nf4WGMMAOn = f, v, w }(nf4GEMVFactored, nf4GEMVVec, nf4WGMMAOn)
	rng := rand.New(rand.NewPCG(11, 12))
	const rank, scale = 4, float32(2)
	for _, s := range []struct {
		out, in int
		rows    []int
	}{{37, 200, []int{1, 3, 8}}, {64, 3584, []int{1, 3, 8, 9, 16, 17, 32, 33, 64, 65, 96}}, {37, 96, []int{1, 5, 16, 32}},
		{40, 18944, []int{2, 13, 27, 41}}, {37, 192, []int{1, 8, 11, 32}}, {4240, 256, []int{1, 8, 16, 32, 64, 77}},
		{300, 1024, []int{49, 64, 96}}} {
		out, in := s.out, s.in
		q := quantRandom(t, rng, out, in)
		h, err := NF4HostFromQuant(q)
		if err != nil {
			t.Fatal(err)
		}
		a := cudatest.Arena(t, d, int64(out*in)*2+1<<24)
		w, err := UploadNF4(d, a, h, "w")
		if err != nil {
			t.Fatal(err)
		}
		want := 8
		switch {
		case in%256 == 0:
			want = NF4GEMMMaxRows
		case in%32 == 0:
			want = NF4GEMVMaxRows
		}
		if NF4GEMVRows(w) != want {
			t.Fatalf("[%d, %d]: NF4GEMVRows %d, want %d", out, in, NF4GEMVRows(w), want)
		}
		deq := q.Dequantize() // [out, in]
		for i, v := range deq {
			deq[i] = cuda.F32(cuda.BF16(v))
		}
		deqLV := factoredWeights(q)               // [out, in] the factored kernels' weights
		bias := ktRand(rng, out, -1, 1)           // [out]
		loraB := ktRand(rng, out*rank, -0.5, 0.5) // [out, rank]
		biasBuf, bBuf := ktBF16(t, d, a, bias), ktBF16(t, d, a, loraB)
		for _, rows := range s.rows {
			xs := ktRand(rng, rows*in, -2, 2)                  // [rows, in]
			hs := ktRand(rng, rows*rank, -0.5, 0.5)            // [rows, rank] LoRA x·Aᵀ
			y0 := ktRand(rng, rows*out, -1, 1)                 // what y holds before (beta = 1)
			xb, hb := ktBF16(t, d, a, xs), ktBF16(t, d, a, hs) // ktRand's values are bf16 already
			// The products and their magnitudes with either weights, shared by the variants.
			prodOf := func(w []float32) (prod, mag []float64) {
				prod, mag = make([]float64, rows*out), make([]float64, rows*out)
				for r := range rows {
					for o := range out {
						for i := range in {
							p := float64(xs[r*in+i]) * float64(w[o*in+i])
							prod[r*out+o] += p
							mag[r*out+o] += math.Abs(p)
						}
					}
				}
				return prod, mag
			}
			prodExact, magExact := prodOf(deq)
			prodLV, magLV := prodOf(deqLV)
			type variant struct{ factored, vec, wg bool }
			variants := []variant{{}}
			switch {
			case in%64 == 0 && rows <= NF4GEMVMaxRows:
				variants = append(variants, variant{factored: true}, variant{factored: true, vec: true})
			case rows > NF4GEMVMaxRows && d.CC[0] == 9: // nf4_gemm_* first, then nf4_wgmma_*
				variants = append(variants, variant{wg: true})
			}
			// Above NF4GEMVMaxRows (nf4_gemm_*) with and without room for split partial sums.
			works := []cuda.Buffer{{}}
			if rows > NF4GEMVMaxRows {
				wb, err := a.Alloc(min(int64(rows*out)*4*80, 4<<20), "work")
				if err != nil {
					t.Fatal(err)
				}
				works = append(works, wb)
			}
			exact := map[string][]float32{} // the exact kernels' outputs by case
			plain := map[string][]float32{} // the factored kernels' outputs without _v, by case
			for _, v := range variants {
				factored := v.factored
				nf4GEMVFactored, nf4GEMVVec, nf4WGMMAOn = v.factored, v.vec, v.wg
				prod, mag := prodExact, magExact
				if factored {
					prod, mag = prodLV, magLV
				}
				for wi, work := range works {
					for _, f32 := range []bool{true, false} {
						for _, beta := range []float32{0, 1} {
							for extra := range 3 { // 0: bare, 1: bias, 2: bias and LoRA
								key := fmt.Sprintf("[%d, %d] rows %d f32 %v beta %g extra %d", out, in, rows, f32, beta, extra)
								name := fmt.Sprintf("%s %+v work %d", key, v, wi)
								mark := a.Mark()
								dt, size := cuda.BF16T, int64(2)
								if f32 {
									dt, size = cuda.F32T, 4
								}
								yb, _ := a.Alloc(int64(rows*out)*size, "y")
								if f32 {
									err = cuda.Upload(d, yb, y0)
								} else {
									err = cuda.Upload(d, yb, cuda.RoundedBF16(y0))
								}
								if err != nil {
									t.Fatal(err)
								}
								args := NF4GEMVArgs{X: cuda.M(xb, rows, in, cuda.BF16T), W: w, Y: cuda.M(yb, rows, out, dt), Beta: beta,
									Work: work}
								if extra >= 1 {
									args.Bias = biasBuf
								}
								if extra == 2 {
									args.H, args.B = cuda.M(hb, rows, rank, cuda.BF16T), cuda.M(bBuf, out, rank, cuda.BF16T)
									args.Scale = scale
								}
								// The shapes the comment above lists take the _v kernels when they are on, so the
								// bit-equality below compares two different kernels there.
								vecShape := in == 3584 || in == 18944 || in == 256
								if got := strings.HasSuffix(nf4GEMVTileKernel(w, rows), "_v"); rows <= NF4GEMVMaxRows && got != (v.vec && vecShape) {
									t.Fatalf("%s: kernel %s", name, nf4GEMVTileKernel(w, rows))
								}
								if err := NF4GEMVFused(d, args); err != nil {
									t.Fatalf("%s: %v", name, err)
								}
								got := make([]float32, rows*out)
								if f32 {
									err = cuda.Download(d, got, yb)
								} else {
									gb := make([]uint16, rows*out)
									err = cuda.Download(d, gb, yb)
									for i, v := range gb {
										got[i] = cuda.F32(v)
									}
								}
								if err != nil {
									t.Fatal(err)
								}
								switch {
								case !factored && !v.wg:
									exact[key] = got
								case f32 && slices.Equal(got, exact[key]): // the factored kernel or nf4_wgmma did not run
									t.Fatalf("%s: the same outputs as the first exact kernel", name)
								}
								// The _v kernels differ in how they load, not in what they add: the same bits.
								if factored && !v.vec {
									plain[key] = got
								} else if v.vec && !slices.Equal(got, plain[key]) {
									t.Fatalf("%s: not the outputs of the kernel without _v", name)
								}
								for r := range rows {
									for o := range out {
										want, m := prod[r*out+o], mag[r*out+o]
										if extra >= 1 {
											want += float64(bias[o])
											m += math.Abs(float64(bias[o]))
										}
										if extra == 2 {
											var l, lm float64
											for k := range rank {
												l += float64(hs[r*rank+k]) * float64(loraB[o*rank+k])
												lm += math.Abs(float64(hs[r*rank+k]) * float64(loraB[o*rank+k]))
											}
											want += float64(scale) * l
											m += float64(scale) * lm
										}
										prev := float64(y0[r*out+o]) // y0 is bf16-exact: the same in both outputs
										want += float64(beta) * prev
										m += math.Abs(float64(beta) * prev)
										tol := 1e-5 * m
										if !f32 {
											tol += math.Abs(want) / 256
										}
										if e := math.Abs(float64(got[r*out+o]) - want); !(e <= tol) {
											t.Fatalf("%s: y[%d, %d] = %g, want %g (tolerance %g)", name, r, o, got[r*out+o], want, tol)
										}
									}
								}
								a.Release(mark)
							}
						}
					}
				}
			}
		}
	}
	x := cuda.M(cuda.Buffer{Bytes: 1 << 20}, 9, 200, cuda.BF16T)
	if err := NF4GEMV(d, x, x, &NF4Weight{Rows: 37, Cols: 200, BlockSize: 64, BlockSize2: 256}, 0); err == nil {
		t.Error("9 rows accepted where in = 200 allows 8")
	}
	x = cuda.M(cuda.Buffer{Bytes: 1 << 20}, 33, 224, cuda.BF16T)
	if err := NF4GEMV(d, x, x, &NF4Weight{Rows: 37, Cols: 224, BlockSize: 32, BlockSize2: 256}, 0); err == nil {
		t.Error("33 rows accepted where in = 224 allows 32")
	}
	x = cuda.M(cuda.Buffer{Bytes: 1 << 20}, NF4GEMMMaxRows+1, 256, cuda.BF16T)
	if err := NF4GEMV(d, x, x, &NF4Weight{Rows: 37, Cols: 256, BlockSize: 64, BlockSize2: 256}, 0); err == nil {
		t.Errorf("%d rows accepted", NF4GEMMMaxRows+1)
	}
}

// factoredWeights is the CPU twin of the factored kernels' weights: bf16(level) · the block's absmax, in
// float32, [out, in].
func factoredWeights(q *quant.Weight) []float32 {
	abs := q.BlockAbsmax()
	w := make([]float32, q.NumElements())
	for e := range w {
		c := q.Codes[e/2] >> 4
		if e%2 == 1 {
			c = q.Codes[e/2] & 0x0f
		}
		w[e] = cuda.F32(cuda.BF16(quant.NF4[c])) * abs[e/q.BlockSize]
	}
	return w
}

// TestNF4GEMVTileKernel checks which kernel the 7B's projections get at decode row counts (no device needed):
// the factored kernels, u8 for the few-tile weights q/o/k/v/down up to 16 rows, and _v wherever the layout
// allows it; the exact ones where in is not a multiple of 64.
func TestNF4GEMVTileKernel(t *testing.T) {
	defer func(v bool) { nf4GEMVVec = v }(nf4GEMVVec)
	nf4 := func(out, in int) *NF4Weight {
		return &NF4Weight{Rows: out, Cols: in, BlockSize: 64, BlockSize2: 256}
	}
	for _, c := range []struct {
		w    *NF4Weight
		rows int
		vec  bool
		want string
	}{
		{nf4(3584, 3584), 1, true, "nf4_gemv_lv_n8u8_v"},    // q, o
		{nf4(512, 3584), 8, true, "nf4_gemv_lv_n8u8_v"},     // k, v
		{nf4(18944, 3584), 1, true, "nf4_gemv_lv_n8_v"},     // gate, up: 1,184 tiles
		{nf4(18944, 3584), 12, true, "nf4_gemv_lv_n16_v"},   //
		{nf4(18944, 3584), 32, true, "nf4_gemv_lv_n32_v"},   //
		{nf4(3584, 18944), 16, true, "nf4_gemv_lv_n16u8_v"}, // down
		{nf4(3584, 18944), 17, true, "nf4_gemv_lv_n32_v"},   //
		{nf4(3584, 3584), 1, false, "nf4_gemv_lv_n8u8"},     // _v off
		{nf4(37, 192), 1, true, "nf4_gemv_lv_n8u8"},         // 192 is not a multiple of 8 groups of 64
		{nf4(37, 96), 20, true, "nf4_gemv_mma_n32"},         // in not a multiple of 64: exact
	} {
		nf4GEMVVec = c.vec
		if got := nf4GEMVTileKernel(c.w, c.rows); got != c.want {
			t.Errorf("[%d, %d] rows %d vec %v: %s, want %s", c.w.Rows, c.w.Cols, c.rows, c.vec, got, c.want)
		}
	}
}
