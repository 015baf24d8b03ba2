//go:build t2mcuda

package ops

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/model"
)

// loraGradRef is LoRAGrad's reference in float64: dW = alpha·Xᵀ·Y ([C, R], or [R, C] transposed) and
// G = X·Bm rounded once to bf16 (nil without Bm). x [N, C], y [N, R], bm [C, R].
func loraGradRef(x, y, bm []float32, N, C, R int, alpha float32, transpose bool) (dw, g []float32) {
	dw = make([]float32, C*R)
	for c := range C {
		for r := range R {
			s := 0.0
			for n := range N {
				s += float64(x[n*C+c]) * float64(y[n*R+r])
			}
			if transpose {
				dw[r*C+c] = float32(float64(alpha) * s)
			} else {
				dw[c*R+r] = float32(float64(alpha) * s)
			}
		}
	}
	if bm == nil {
		return dw, nil
	}
	g = make([]float32, N*R)
	for n := range N {
		for r := range R {
			s := 0.0
			for c := range C {
				s += float64(x[n*C+c]) * float64(bm[c*R+r])
			}
			g[n*R+r] = cuda.F32(cuda.BF16(float32(s)))
		}
	}
	return dw, g
}

// TestLoRAGradParity checks the LoRA weight-gradient kernels against loraGradRef: shapes that fill no block,
// several column blocks with a partial last one, row chunks with a partial last tile, both ranks, with and
// without G, both output layouts. fp32 sums of bf16 products differ from float64 by summation order only.
func TestLoRAGradParity(t *testing.T) {
	d := cudatest.Device(t)
	cases := []struct {
		N, C, R   int
		withG, tr bool
		h         bool    // the forward's h = xl·Aᵀ alone (G with Bm = A transposed, no DW)
		drop      float32 // X read through LoRA dropout
	}{
		{45, 64, 8, true, false, false, 0},     // the tiny fixture's hidden size: one block, one partial tile
		{45, 64, 8, false, true, false, 0},     // the same as dA
		{300, 520, 16, true, false, false, 0},  // 3 column blocks (the last one of 8 columns), 10 row tiles
		{300, 520, 16, false, true, false, 0},  // rank 16 as dA
		{2048, 3584, 8, true, false, false, 0}, // the 7B's q_proj/o_proj shape at [4, 512]: row chunks of 128
		{1000, 512, 8, false, true, false, 0},  // k/v width: 2 column blocks, row chunks of one tile
		{300, 520, 8, false, true, false, 0.3}, // dA from xl dropped as read
		{300, 520, 16, false, false, true, 0.3},
		{2048, 3584, 8, false, false, true, 0.05}, // h of q_proj at the 7B's shape, the recipe's dropout
		{45, 64, 8, false, false, true, 0},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("N%d_C%d_R%d_g%v_t%v_h%v_p%g", c.N, c.C, c.R, c.withG, c.tr, c.h, c.drop), func(t *testing.T) {
			d := cudatest.Device(t) // bound to this subtest's thread
			a := cudatest.Arena(t, d, 256<<20)
			rng := rand.New(rand.NewPCG(11, uint64(c.N*c.C+c.R)))
			x, y := ktRand(rng, c.N*c.C, -1, 1), ktRand(rng, c.N*c.R, -1, 1)
			const seed = 0x5eed
			xl := x // what the products see: LoRA dropout's bf16 output
			if c.drop > 0 {
				xl = make([]float32, len(x))
				model.DropoutForward(xl, x, c.drop, seed)
				for i, v := range xl {
					xl[i] = cuda.F32(cuda.BF16(v))
				}
			}
			args := LoRAGradArgs{X: ktBF16(t, d, a, x), N: c.N, C: c.C, R: c.R, Alpha: 0.75, Transpose: c.tr,
				Drop: c.drop, Seed: seed}
			if !c.h {
				args.Y, args.DW = ktBF16(t, d, a, y), ktPoison(t, d, a, int64(c.C*c.R)*4)
			}
			var bm []float32 // [C, R], as the reference takes it
			if c.withG || c.h {
				bm = ktRand(rng, c.C*c.R, -0.5, 0.5)
				args.Bm, args.G = ktBF16(t, d, a, bm), ktPoison(t, d, a, int64(c.N*c.R)*2)
				if c.h { // the kernel reads lora_A [R, C]
					aT := make([]float32, len(bm))
					for cc := range c.C {
						for r := range c.R {
							aT[r*c.C+cc] = bm[cc*c.R+r]
						}
					}
					args.Bm, args.BmT = ktBF16(t, d, a, aT), true
				}
			}
			scratch := ktPoison(t, d, a, LoRAGradScratchBytes(c.N, c.C, c.R))
			if err := LoRAGrad(d, args, scratch); err != nil {
				t.Fatal(err)
			}
			wdw, wg := loraGradRef(xl, y, bm, c.N, c.C, c.R, args.Alpha, c.tr)
			if !c.h {
				ktCompare(t, "dW", ktGetF32(t, d, args.DW, c.C*c.R), wdw, tolF32)
			}
			if bm != nil {
				ktCompare(t, "G", ktGetBF16(t, d, args.G, c.N*c.R), wg, tolBF16)
			}
			if c.drop == 0 {
				return
			}
			// Dropping as read is bit for bit the same kernel on Dropout's output.
			out := func() []float32 {
				if c.h {
					return ktGetBF16(t, d, args.G, c.N*c.R)
				}
				return ktGetF32(t, d, args.DW, c.C*c.R)
			}
			asRead := out()
			if err := Dropout(d, args.X, args.X, DropoutDims{B: 1, Tp: c.N, Tl: c.N, C: c.C}, c.drop, seed); err != nil {
				t.Fatal(err)
			}
			args.Drop = 0
			if err := LoRAGrad(d, args, scratch); err != nil {
				t.Fatal(err)
			}
			for i, w := range out() {
				if asRead[i] != w {
					t.Fatalf("output %d dropped as read %v, from Dropout's output %v", i, asRead[i], w)
				}
			}
		})
	}
	// Bad shapes are errors, not launches.
	a := cudatest.Arena(t, d, 1<<20)
	buf := ktPoison(t, d, a, 4096)
	for _, bad := range []LoRAGradArgs{{X: buf, Y: buf, DW: buf, N: 4, C: 12, R: 8}, {X: buf, Y: buf, DW: buf, N: 4, C: 8, R: 4},
		{X: buf, Y: buf, DW: buf, Bm: buf, N: 4, C: 8, R: 8}, {X: buf, N: 4, C: 8, R: 8},
		{X: buf, Y: buf, DW: buf, Bm: buf, G: buf, BmT: true, N: 4, C: 8, R: 8},
		{X: buf, Y: buf, DW: buf, N: 4, C: 8, R: 8, Drop: 1}} {
		if err := LoRAGrad(d, bad, buf); err == nil {
			t.Errorf("LoRAGrad(%+v) accepted", bad)
		}
	}
}

// TestLoRAGradGrid checks the split of X into blocks: every row and column covered, row chunks whole tiles,
// at most one wave of blocks, each walking at least loraGradMinTiles tiles where there are that many.
func TestLoRAGradGrid(t *testing.T) {
	for _, c := range []struct{ N, C, wantNX int }{{2048, 3584, 14}, {2048, 18944, 74}, {2048, 512, 2}, {45, 64, 1},
		{1800, 3584, 14}, {100, 3584, 14}} {
		nx, ny, rb := loraGradGrid(c.N, c.C)
		if nx != c.wantNX || rb%loraGradTile != 0 || ny*rb < c.N || (ny-1)*rb >= c.N {
			t.Errorf("grid of [%d, %d]: nx %d ny %d rb %d", c.N, c.C, nx, ny, rb)
		}
		tiles := (c.N + loraGradTile - 1) / loraGradTile
		if blocks := nx * ny; blocks > loraGradWave && ny > 1 {
			t.Errorf("grid of [%d, %d]: %d blocks, more than one wave (%d)", c.N, c.C, blocks, loraGradWave)
		}
		if rb/loraGradTile < min(loraGradMinTiles, tiles) {
			t.Errorf("grid of [%d, %d]: blocks walk %d rows, want at least %d tiles", c.N, c.C, rb, loraGradMinTiles)
		}
	}
}

// benchAlloc returns an allocator of a's buffers filled with bf16 ≈ 0.0115 (0x3c3c): finite sums everywhere.
func benchAlloc(b *testing.B, d *cuda.Device, a *cuda.Arena) func(int64) cuda.Buffer {
	return func(n int64) cuda.Buffer { return ktFilled(b, d, a, n, 0x3c) }
}

// BenchmarkLoRAGrad times one layer's LoRA weight gradients of the 7B at [4, 512] (q, k, v, o, gate, up at
// rank 8: dB with g from dy, then dA from xl), by LoRAGrad against cuBLAS's skinny GEMMs (what the machine
// runs with T2M_GPU_LORA_GRAD=0), with device events around 20 layers' worth of launches:
//
//	(cd gpu/ops && ../../bin/gpu-ops.test -test.run '^$' -test.bench LoRAGrad)
func BenchmarkLoRAGrad(b *testing.B) {
	d := cudatest.Device(b)
	const N, R, in = 2048, 8, 3584
	outs := []int{3584, 512, 512, 3584, 18944, 18944}
	alloc := benchAlloc(b, d, cudatest.Arena(b, d, 2<<30))
	dy, xl := alloc(N*18944*2), alloc(N*in*2)
	h, g, Bm, dw := alloc(N*R*2), alloc(N*R*2), alloc(18944*R*2), alloc(18944*R*4)
	scratch := alloc(LoRAGradScratchBytes(N, 18944, R) + LoRAGradScratchBytes(N, in, R))
	blas, err := d.BLAS()
	if err != nil {
		b.Fatal(err)
	}
	layer := map[string]func() error{
		"fused": func() error {
			for _, out := range outs {
				if err := LoRAGrad(d, LoRAGradArgs{X: dy, Y: h, Bm: Bm, N: N, C: out, R: R, DW: dw, Alpha: 2, G: g}, scratch); err != nil {
					return err
				}
				if err := LoRAGrad(d, LoRAGradArgs{X: xl, Y: g, N: N, C: in, R: R, DW: dw, Alpha: 2, Transpose: true}, scratch); err != nil {
					return err
				}
			}
			return nil
		},
		"cublas": func() error {
			for _, out := range outs {
				dyM, gM := cuda.M(dy, N, out, cuda.BF16T), cuda.M(g, N, R, cuda.BF16T)
				if err := blas.Gemm(false, false, 1, dyM, cuda.M(Bm, out, R, cuda.BF16T), 0, gM); err != nil {
					return err
				}
				if err := blas.LinearGradWeight(dyM, cuda.M(h, N, R, cuda.BF16T), 2, 0, cuda.M(dw, out, R, cuda.F32T)); err != nil {
					return err
				}
				if err := blas.LinearGradWeight(gM, cuda.M(xl, N, in, cuda.BF16T), 2, 0, cuda.M(dw, R, in, cuda.F32T)); err != nil {
					return err
				}
			}
			return nil
		},
	}
	for _, name := range []string{"fused", "cublas"} {
		b.Run(name, func(b *testing.B) {
			d := cudatest.Device(b) // bound to this sub-benchmark's thread
			for range b.N {
				b.ReportMetric(cudatest.Millis(b, d, 20, layer[name])*1000, "us/layer")
			}
		})
	}
}

// BenchmarkLoRAGradShapes times LoRAGrad per shape of the 7B layer (as in BenchmarkLoRAGrad), 20 launches
// each, and logs µs and GB/s (X read once) per call.
func BenchmarkLoRAGradShapes(b *testing.B) {
	d := cudatest.Device(b)
	const N, R = 2048, 8
	alloc := benchAlloc(b, d, cudatest.Arena(b, d, 1<<30))
	x, y, g, Bm, dw := alloc(N*18944*2), alloc(N*R*2), alloc(N*R*2), alloc(18944*R*2), alloc(18944*R*4)
	scratch := alloc(LoRAGradScratchBytes(N, 18944, R))
	for range b.N {
		for _, c := range []struct {
			C     int
			withG bool
		}{{512, true}, {3584, true}, {18944, true}, {3584, false}, {18944, false}} {
			args := LoRAGradArgs{X: x, Y: y, N: N, C: c.C, R: R, DW: dw, Alpha: 1}
			if c.withG {
				args.Bm, args.G = Bm, g
			}
			us := 1000 * cudatest.Millis(b, d, 20, func() error { return LoRAGrad(d, args, scratch) })
			nx, ny, rb := loraGradGrid(N, c.C)
			b.Logf("X [%d, %d] g=%v: %.1f µs, %.0f GB/s (grid %d×%d, %d rows per block)", N, c.C, c.withG, us,
				float64(N*c.C*2)/us/1e3, nx, ny, rb)
		}
	}
}
