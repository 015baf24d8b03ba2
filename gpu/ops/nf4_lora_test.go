//go:build t2mcuda

package ops

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
)

// TestDequantNF4LoRA compares nf4_dequant_lora_bf16 with its CPU twin: quant's Dequantize rounded to bf16,
// plus s·Σ_k B[o, k]·A[k, c] in float64. The kernel sums in fp32 and rounds once to bf16, so each value must
// be within one bf16 step of the float64 result, plus the fp32 sum's own rounding bound (an index error in A
// or B, or a wrong row, is off by the size of the adapter's term, which the shapes here make comparable to
// the weights). With a zero adapter the output must equal nf4_dequant_bf16's value for value (a weight of −0
// comes out as +0).
func TestDequantNF4LoRA(t *testing.T) {
	d := cudatest.Device(t)
	rng := rand.New(rand.NewPCG(12, 13))
	for _, s := range []struct{ rows, cols, bs, bs2, rank int }{
		{96, 208, 64, 256, 8},
		{512, 3584, 64, 256, 8}, // a k_proj-shaped weight, the adapter of t2m train's default
		{33, 64, 32, 5, 3},
		{3, 16, 16, 2, 64},
	} {
		h := randomNF4(rng, s.rows, s.cols, s.bs, s.bs2)
		n := s.rows * s.cols
		bf := func(m int, scale float32) []float32 { // values exactly representable in bf16
			v := make([]float32, m)
			for i := range v {
				v[i] = cuda.F32(cuda.BF16(scale * (2*rng.Float32() - 1)))
			}
			return v
		}
		A, B, scale := bf(s.rank*s.cols, 1), bf(s.rows*s.rank, 1), float32(0.04)
		ar := cudatest.Arena(t, d, int64(n)*8+1<<20)
		w, err := UploadNF4(d, ar, h, "w")
		if err != nil {
			t.Fatal(err)
		}
		ab, _ := ar.Alloc(int64(len(A))*2, "a")
		bb, _ := ar.Alloc(int64(len(B))*2, "b")
		zero, _ := ar.Alloc(int64(len(B))*2, "zero b")
		out, _ := ar.Alloc(int64(2*n+16), "out")
		plain, _ := ar.Alloc(int64(2*n), "plain")
		for _, err := range []error{cuda.UploadBF16(d, ab, A), cuda.UploadBF16(d, bb, B), d.Memset(zero, 0), d.Memset(out, 0xFF)} {
			if err != nil {
				t.Fatal(err)
			}
		}
		download := func(b cuda.Buffer, m int) []uint16 {
			v := make([]uint16, m)
			if err := cuda.Download(d, v, b); err != nil {
				t.Fatal(err)
			}
			return v
		}
		// A zero adapter: exactly the plain dequantization.
		if err := DequantNF4(d, w, plain); err != nil {
			t.Fatal(err)
		}
		if err := DequantNF4LoRA(d, w, ab, zero, s.rank, scale, out); err != nil {
			t.Fatal(err)
		}
		want, got := download(plain, n), download(out, n)
		for i := range want {
			if cuda.F32(got[i]) != cuda.F32(want[i]) { // equal values: −0 + s·0 is +0
				t.Fatalf("%v, zero adapter: element %d is %#x, nf4_dequant_bf16 gives %#x", s, i, got[i], want[i])
			}
		}
		if err := DequantNF4LoRA(d, w, ab, bb, s.rank, scale, out); err != nil {
			t.Fatal(err)
		}
		got = download(out, n+8)
		ref := quantView(h).Dequantize()
		bad, worst := 0, 0.0
		for o := range s.rows {
			for c := range s.cols {
				i := o*s.cols + c
				sum, mag := 0.0, 0.0 // Σ_k B·A and Σ_k |B·A|
				for k := range s.rank {
					p := float64(B[o*s.rank+k]) * float64(A[k*s.cols+c])
					sum, mag = sum+p, mag+math.Abs(p)
				}
				term := float64(scale) * sum
				w := float64(cuda.F32(cuda.BF16(ref[i])))
				r, g := w+term, float64(cuda.F32(got[i]))
				ulp := math.Ldexp(1, math.Ilogb(math.Max(math.Abs(r), 1e-30))-7) // bf16 spacing at r
				// The kernel's fp32 products, k-ordered sums and final add round before the bf16 rounding: at
				// most (rank + 2) fp32 half-steps of the magnitudes involved, which matters only where the
				// adapter's term nearly cancels W (then the float64 result sits near a bf16 boundary).
				f32 := float64(s.rank+2) * 0x1p-24 * (math.Abs(w) + float64(scale)*mag)
				worst = max(worst, math.Abs(term))
				if math.Abs(g-r) > ulp+f32 {
					if bad < 5 {
						t.Errorf("%v element [%d, %d]: %g, want %g (W %g + term %g)", s, o, c, g, r, ref[i], term)
					}
					bad++
				}
			}
		}
		if got[n] != 0xFFFF {
			t.Errorf("%v: wrote past the end", s)
		}
		if bad > 0 {
			t.Errorf("%v: %d of %d values off by more than one bf16 step", s, bad, n)
		}
		t.Logf("%v: largest adapter term %.3g", s, worst)
	}
	// Shapes the kernel cannot take are refused.
	ar := cudatest.Arena(t, d, 1<<20)
	w, err := UploadNF4(d, ar, randomNF4(rng, 4, 24, 16, 2), "w")
	if err != nil {
		t.Fatal(err)
	}
	buf, _ := ar.Alloc(4096, "buf")
	if err := DequantNF4LoRA(d, w, buf, buf, 2, 1, buf); err == nil {
		t.Error("24 columns (not a multiple of 16): no error")
	}
}
