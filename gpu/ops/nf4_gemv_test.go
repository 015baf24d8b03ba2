//go:build t2mcuda

package ops

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
)

// TestNF4GEMVParity compares nf4_gemv with its CPU twin (quant's Dequantize rounded to bf16, then x·Wᵀ in
// float64) for 1..8 rows, bf16 and fp32 outputs, with and without accumulation into y (beta = 1), on a shape
// whose outputs are not a multiple of the kernel's 8 per block and whose inputs are not of its 256 per step.
// fp32 output: the sums differ only in order (1e-5 of the row's magnitude); bf16: one rounding more.
func TestNF4GEMVParity(t *testing.T) {
	d := cudatest.Device(t)
	rng := rand.New(rand.NewPCG(11, 12))
	for _, s := range [][2]int{{37, 200}, {64, 3584}} {
		out, in := s[0], s[1]
		q := quantRandom(t, rng, out, in)
		h, err := NF4HostFromQuant(q)
		if err != nil {
			t.Fatal(err)
		}
		a := cudatest.Arena(t, d, int64(out*in)*2+1<<22)
		w, err := UploadNF4(d, a, h, "w")
		if err != nil {
			t.Fatal(err)
		}
		deq := q.Dequantize() // [out, in]
		for i, v := range deq {
			deq[i] = cuda.F32(cuda.BF16(v))
		}
		for _, rows := range []int{1, 3, 8} {
			xs := make([]uint16, rows*in) // [rows, in] bf16
			for i := range xs {
				xs[i] = cuda.BF16(float32(rng.NormFloat64()))
			}
			y0 := make([]float32, rows*out) // what y holds before (beta = 1)
			for i := range y0 {
				y0[i] = float32(rng.NormFloat64())
			}
			xb, _ := a.Alloc(int64(len(xs))*2, "x")
			if err := cuda.Upload(d, xb, xs); err != nil {
				t.Fatal(err)
			}
			for _, f32 := range []bool{true, false} {
				for _, beta := range []float32{0, 1} {
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
					if err := NF4GEMV(d, cuda.M(xb, rows, in, cuda.BF16T), cuda.M(yb, rows, out, dt), w, beta); err != nil {
						t.Fatal(err)
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
					for r := range rows {
						for o := range out {
							var want, mag float64
							for i := range in {
								p := float64(cuda.F32(xs[r*in+i])) * float64(deq[o*in+i])
								want += p
								mag += math.Abs(p)
							}
							prev := float64(y0[r*out+o])
							if !f32 {
								prev = float64(cuda.F32(cuda.BF16(y0[r*out+o])))
							}
							want += float64(beta) * prev
							mag += math.Abs(float64(beta) * prev)
							tol := 1e-5 * mag
							if !f32 {
								tol += math.Abs(want) / 256
							}
							if e := math.Abs(float64(got[r*out+o]) - want); !(e <= tol) {
								t.Fatalf("[%d, %d] rows %d f32 %v beta %g: y[%d, %d] = %g, want %g (tolerance %g)",
									out, in, rows, f32, beta, r, o, got[r*out+o], want, tol)
							}
						}
					}
					a.Release(mark)
				}
			}
		}
	}
	x := cuda.M(cuda.Buffer{Bytes: 1 << 20}, 9, 200, cuda.BF16T)
	if err := NF4GEMV(d, x, x, &NF4Weight{Rows: 37, Cols: 200, BlockSize: 64}, 0); err == nil {
		t.Error("9 rows accepted")
	}
}
