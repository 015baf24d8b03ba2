//go:build t2mcuda

package cuda_test

import (
	"bytes"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
)

// TestTuneKeepsBits tunes three 7B training products at a row count whose tiles fill 1.6 waves of an
// H200 (where cuBLAS's default is slowest), with the margin off so that the fastest exact cuBLASLt
// algorithm is taken, and checks that Gemm then gives, for beta 0 and beta 1, the bytes cublasGemmEx gave
// for the same operands before the tuning.
func TestTuneKeepsBits(t *testing.T) {
	d := cudatest.Device(t)
	blas, err := d.BLAS()
	if err != nil {
		t.Fatal(err)
	}
	const rows = 1856
	a := cudatest.Arena(t, d, 1<<30)
	rnd := func(r, c int, seed uint64) cuda.Mat {
		b, err := a.Alloc(int64(r*c)*2, "operand")
		if err != nil {
			t.Fatal(err)
		}
		if err := cuda.Upload(d, b, cuda.RandomBF16CPU(r*c, seed, 1)); err != nil {
			t.Fatal(err)
		}
		return cuda.M(b, r, c, cuda.BF16T)
	}
	get := func(m cuda.Mat) []byte {
		out := make([]byte, m.Rows*m.Cols*2)
		if err := cuda.Download(d, out, m.Buf); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, c := range []struct {
		name           string
		transB         bool
		ar, ac, br, bc int
	}{
		{"q forward x·Wᵀ", true, rows, 3584, 3584, 3584},
		{"gate input gradient dy·W", false, rows, 18944, 18944, 3584},
		{"down forward x·Wᵀ", true, rows, 18944, 3584, 18944},
	} {
		A, B := rnd(c.ar, c.ac, 1), rnd(c.br, c.bc, 2)
		n := c.bc
		if c.transB {
			n = c.br
		}
		init := rnd(rows, n, 3)
		y, check := rnd(rows, n, 4), rnd(rows, n, 5)
		want := make([][]byte, 2)
		for i, beta := range []float32{0, 1} {
			if err := d.Copy(y.Buf, init.Buf); err != nil {
				t.Fatal(err)
			}
			if err := blas.Gemm(false, c.transB, 1, A, B, beta, y); err != nil {
				t.Fatal(err)
			}
			want[i] = get(y)
		}
		res, err := blas.Tune(false, c.transB, A, B, y, check, -1)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		t.Logf("%s: %+v", c.name, res)
		if !res.Switched {
			t.Fatalf("%s: no exact cuBLASLt algorithm was taken (%d timed; %s)", c.name, res.Candidates, res.Chosen)
		}
		if again, err := blas.Tune(false, c.transB, A, B, y, check, -1); err != nil || again != res {
			t.Errorf("%s: tuning again gave %+v, %v; want the first result", c.name, again, err)
		}
		for i, beta := range []float32{0, 1} {
			if err := d.Copy(y.Buf, init.Buf); err != nil {
				t.Fatal(err)
			}
			if err := blas.Gemm(false, c.transB, 1, A, B, beta, y); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(get(y), want[i]) {
				t.Errorf("%s, beta %v: the tuned algorithm's output differs from cublasGemmEx's", c.name, beta)
			}
		}
	}
}
