//go:build t2mcuda

package cuda_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/internal/numtest"
)

// hostMat is a row-major host matrix whose values are exactly representable in bf16.
type hostMat struct {
	rows, cols int
	v          []float32
}

func randBF16Mat(rng *rand.Rand, rows, cols int) hostMat {
	m := hostMat{rows, cols, make([]float32, rows*cols)}
	for i := range m.v {
		m.v[i] = cuda.F32(cuda.BF16(float32(rng.NormFloat64())))
	}
	return m
}

func (m hostMat) at(i, j int, trans bool) float64 {
	if trans {
		return float64(m.v[j*m.cols+i])
	}
	return float64(m.v[i*m.cols+j])
}

// gemmCPU is the float64 reference: alpha·op(A)·op(B) + beta·C.
func gemmCPU(transA, transB bool, alpha float64, A, B hostMat, beta float64, C hostMat) []float64 {
	M, K := A.rows, A.cols
	if transA {
		M, K = K, M
	}
	N := B.cols
	if transB {
		N = B.rows
	}
	out := make([]float64, M*N)
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			var s float64
			for k := 0; k < K; k++ {
				s += A.at(i, k, transA) * B.at(k, j, transB)
			}
			out[i*N+j] = alpha*s + beta*float64(C.v[i*N+j])
		}
	}
	return out
}

func toBF16(v []float32) []uint16 {
	out := make([]uint16, len(v))
	for i, x := range v {
		out[i] = cuda.BF16(x)
	}
	return out
}

// uploadMat copies m to a new arena buffer as dtype t.
func uploadMat(t *testing.T, d *cuda.Device, a *cuda.Arena, m hostMat, dt cuda.DType) cuda.Mat {
	t.Helper()
	b, err := a.Alloc(int64(len(m.v))*dt.Size(), "mat")
	if err != nil {
		t.Fatal(err)
	}
	if dt == cuda.BF16T {
		err = cuda.Upload(d, b, toBF16(m.v))
	} else {
		err = cuda.Upload(d, b, m.v)
	}
	if err != nil {
		t.Fatal(err)
	}
	return cuda.M(b, m.rows, m.cols, dt)
}

func downloadMat(t *testing.T, d *cuda.Device, m cuda.Mat) []float32 {
	t.Helper()
	n := m.Rows * m.Cols
	if m.DType == cuda.F32T {
		out := make([]float32, n)
		if err := cuda.Download(d, out, m.Buf); err != nil {
			t.Fatal(err)
		}
		return out
	}
	raw := make([]uint16, n)
	if err := cuda.Download(d, raw, m.Buf); err != nil {
		t.Fatal(err)
	}
	out := make([]float32, n)
	for i, b := range raw {
		out[i] = cuda.F32(b)
	}
	return out
}

// TestGemm checks every transpose combination, both output types, alpha and beta, against a float64
// CPU product of the same bf16 inputs. Tolerances: bf16 output 1e-2 (one bf16 rounding, 2^-9 relative,
// is ~2e-3); f32 output 1e-5 (bf16 products are exact in fp32; only fp32 accumulation rounds).
func TestGemm(t *testing.T) {
	d := cudatest.Device(t)
	blas, err := d.BLAS()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cuBLAS: %s version %d", blas.Lib, blas.Version)
	rng := rand.New(rand.NewPCG(1, 2))
	const M, N, K = 136, 72, 3584 // y = x·Wᵀ at hidden size K
	for _, c := range []struct {
		name           string
		transA, transB bool
		alpha, beta    float32
	}{
		{"y=x·Wᵀ", false, true, 1, 0},
		{"dx=dy·W", false, false, 1, 0},
		{"dW=dyᵀ·x", true, false, 2, 0},
		{"Aᵀ·Bᵀ", true, true, 1, 0},
		{"y+=s·h·Bᵀ", false, true, 0.5, 1},
	} {
		for _, out := range []cuda.DType{cuda.BF16T, cuda.F32T} {
			t.Run(fmt.Sprintf("%s/%s", c.name, out), func(t *testing.T) {
				d := cudatest.Device(t)
				a := cudatest.Arena(t, d, 64<<20)
				ar, ac := M, K
				if c.transA {
					ar, ac = K, M
				}
				br, bc := K, N
				if c.transB {
					br, bc = N, K
				}
				hA, hB := randBF16Mat(rng, ar, ac), randBF16Mat(rng, br, bc)
				hC := randBF16Mat(rng, M, N)
				A, B := uploadMat(t, d, a, hA, cuda.BF16T), uploadMat(t, d, a, hB, cuda.BF16T)
				C := uploadMat(t, d, a, hC, out)
				if c.beta == 0 {
					if err := d.Memset(C.Buf, 0xFF); err != nil { // NaN in both types: must be overwritten
						t.Fatal(err)
					}
				}
				if err := blas.Gemm(c.transA, c.transB, c.alpha, A, B, c.beta, C); err != nil {
					t.Fatal(err)
				}
				got := downloadMat(t, d, C)
				want := gemmCPU(c.transA, c.transB, float64(c.alpha), hA, hB, float64(c.beta), hC)
				tol := 1e-2
				if out == cuda.F32T {
					tol = 1e-5
				}
				e := numtest.RelL2(got, want)
				t.Logf("relative error %.3g (tolerance %g)", e, tol)
				if !(e <= tol) {
					t.Errorf("relative error %.3g > %g", e, tol)
				}
			})
		}
	}
}

// TestGemmBatched checks the strided batched product (attention-style: per head Q·Kᵀ) and rejects a bad
// shape.
func TestGemmBatched(t *testing.T) {
	d := cudatest.Device(t)
	blas, err := d.BLAS()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const batch, T, Dh = 3, 40, 128
	a := cudatest.Arena(t, d, 16<<20)
	hq, hk := randBF16Mat(rng, batch*T, Dh), randBF16Mat(rng, batch*T, Dh)
	q, k := uploadMat(t, d, a, hq, cuda.BF16T), uploadMat(t, d, a, hk, cuda.BF16T)
	sb, _ := a.Alloc(batch*T*T*4, "s")
	s := cuda.M(sb, T, T, cuda.F32T)
	if err := d.Memset(sb, 0xFF); err != nil {
		t.Fatal(err)
	}
	q.Rows, k.Rows = T, T
	if err := blas.GemmBatched(false, true, 0.125, q, T*Dh, k, T*Dh, 0, s, T*T, batch); err != nil {
		t.Fatal(err)
	}
	s.Rows = batch * T
	got := downloadMat(t, d, s)
	for b := 0; b < batch; b++ {
		qb := hostMat{T, Dh, hq.v[b*T*Dh : (b+1)*T*Dh]}
		kb := hostMat{T, Dh, hk.v[b*T*Dh : (b+1)*T*Dh]}
		want := gemmCPU(false, true, 0.125, qb, kb, 0, hostMat{T, T, make([]float32, T*T)})
		if e := numtest.RelL2(got[b*T*T:(b+1)*T*T], want); !(e <= 1e-5) {
			t.Errorf("batch %d: relative error %.3g > 1e-5", b, e)
		}
	}
	if err := blas.GemmBatched(false, true, 1, q, T*Dh, k, T*Dh, 0, cuda.M(sb, T, T+1, cuda.F32T), T*T, batch); err == nil {
		t.Error("mismatched shapes accepted")
	}
}

// BenchmarkGemm7B times the NF4-free part of training's big products at the 7B shape and [4, 512] (2048 rows):
// the forward y = x·Wᵀ and the input gradient dx = dy·W of each projection, bf16 in and out, beta 0, as the
// machine calls them, and logs TFLOP/s per shape (20 calls between two events, after one warm-up):
//
//	(cd gpu/cuda && ../../bin/gpu-cuda.test -test.run '^$' -test.bench Gemm7B -test.benchtime 1x -test.v)
func BenchmarkGemm7B(b *testing.B) {
	d := cudatest.Device(b)
	blas, err := d.BLAS()
	if err != nil {
		b.Fatal(err)
	}
	const rows = 2048
	a := cudatest.Arena(b, d, 1<<30)
	buf := func(n int) cuda.Buffer {
		x, err := a.Alloc(int64(n)*2, "bench")
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Memset(x, 0x3c); err != nil {
			b.Fatal(err)
		}
		return x
	}
	x, y, w := buf(rows*18944), buf(rows*18944), buf(18944*3584)
	for range b.N {
		for _, s := range []struct {
			name    string
			out, in int
		}{{"q/o", 3584, 3584}, {"k/v", 512, 3584}, {"gate/up", 18944, 3584}, {"down", 3584, 18944}} {
			W := cuda.M(w, s.out, s.in, cuda.BF16T)
			fwd := func() error {
				return blas.Linear(cuda.M(x, rows, s.in, cuda.BF16T), W, 0, cuda.M(y, rows, s.out, cuda.BF16T))
			}
			bwd := func() error {
				return blas.LinearGradInput(cuda.M(x, rows, s.out, cuda.BF16T), W, 1, 0, cuda.M(y, rows, s.in, cuda.BF16T))
			}
			for _, c := range []struct {
				dir  string
				call func() error
			}{{"forward", fwd}, {"input gradient", bwd}} {
				if err := c.call(); err != nil { // warm-up: cuBLAS's first call of a shape picks its kernel
					b.Fatal(err)
				}
				us := 1000 * cudatest.Millis(b, d, 20, c.call)
				b.Logf("%s %s (out %d, in %d): %.1f µs, %.0f TFLOP/s", s.name, c.dir, s.out, s.in, us,
					2*float64(rows)*float64(s.out)*float64(s.in)/us/1e6)
			}
		}
	}
}
