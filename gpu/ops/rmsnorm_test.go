//go:build t2mcuda

package ops

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/model"
)

// Helpers shared by the op parity tests (rmsnorm, rope, attention, swiglu, residual, embedding,
// crossentropy, adamw, gradnorm). Inputs are random and rounded to bf16 first where the kernel reads bf16,
// so the CPU twin sees exactly the kernel's inputs; outputs are poisoned (all bits set: NaN in bf16 and fp32)
// before each launch, so an element the kernel did not write fails the comparison.

// Tolerances: relative L2 error ‖got − want‖/‖want‖. fp32 outputs of fp32 math differ from the CPU by the
// summation order only; bf16 outputs carry one bf16 rounding (2⁻⁹ relative) plus, for attention, bf16
// rounding of P and dS on the tensor cores.
const (
	tolF32  = 1e-5
	tolBF16 = 1e-2
)

// ktRand returns n uniform values in [lo, hi), rounded to bf16.
func ktRand(rng *rand.Rand, n int, lo, hi float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = cuda.F32(cuda.BF16(lo + (hi-lo)*rng.Float32()))
	}
	return x
}

// ktBF16 uploads x as bf16 into a new buffer of a.
func ktBF16(t *testing.T, d *cuda.Device, a *cuda.Arena, x []float32) cuda.Buffer {
	t.Helper()
	h := make([]uint16, len(x))
	for i, v := range x {
		h[i] = cuda.BF16(v)
	}
	b, err := a.Alloc(int64(len(x))*2, "bf16 input")
	if err != nil {
		t.Fatal(err)
	}
	if err := cuda.Upload(d, b, h); err != nil {
		t.Fatal(err)
	}
	return b
}

// ktUp uploads a slice of 4-byte elements (float32 or int32) into a new buffer of a.
func ktUp[T float32 | int32](t *testing.T, d *cuda.Device, a *cuda.Arena, x []T) cuda.Buffer {
	t.Helper()
	b, err := a.Alloc(int64(len(x))*4, "input")
	if err != nil {
		t.Fatal(err)
	}
	if err := cuda.Upload(d, b, x); err != nil {
		t.Fatal(err)
	}
	return b
}

// ktPoison returns a new buffer of a with every byte 0xFF.
func ktPoison(t *testing.T, d *cuda.Device, a *cuda.Arena, bytes int64) cuda.Buffer {
	t.Helper()
	return ktFilled(t, d, a, bytes, 0xFF)
}

// ktFilled returns a new buffer of a with every byte v.
func ktFilled(t testing.TB, d *cuda.Device, a *cuda.Arena, bytes int64, v byte) cuda.Buffer {
	t.Helper()
	b, err := a.Alloc(bytes, "output")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Memset(b, v); err != nil {
		t.Fatal(err)
	}
	return b
}

// ktGetBF16 waits for the device and downloads n bf16 values as float32.
func ktGetBF16(t *testing.T, d *cuda.Device, b cuda.Buffer, n int) []float32 {
	t.Helper()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	h := make([]uint16, n)
	if err := cuda.Download(d, h, b); err != nil {
		t.Fatal(err)
	}
	x := make([]float32, n)
	for i, v := range h {
		x[i] = cuda.F32(v)
	}
	return x
}

// ktGetF32 waits for the device and downloads n float32 values.
func ktGetF32(t *testing.T, d *cuda.Device, b cuda.Buffer, n int) []float32 {
	t.Helper()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	x := make([]float32, n)
	if err := cuda.Download(d, x, b); err != nil {
		t.Fatal(err)
	}
	return x
}

// ktCompare fails the test when got differs from want by more than tol in relative L2 error, or holds a
// NaN or Inf (an unwritten, poisoned element), or the reference is all zeros (a test that cannot fail).
func ktCompare(t *testing.T, name string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	var num, den, maxAbs float64
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.IsInf(g, 0) {
			t.Errorf("%s[%d] = %v (unwritten or overflowed), want %v", name, i, g, w)
			return
		}
		num += (g - w) * (g - w)
		den += w * w
		maxAbs = max(maxAbs, math.Abs(g-w))
	}
	if den == 0 {
		t.Fatalf("%s: the reference is all zeros; the test could not fail", name)
	}
	rel := math.Sqrt(num / den)
	t.Logf("%s: relative L2 error %.3g (tolerance %.0e), max abs error %.3g over %d values", name, rel, tol,
		maxAbs, len(got))
	if !(rel <= tol) {
		t.Errorf("%s: relative L2 error %.3g exceeds %.0e", name, rel, tol)
	}
}

func TestRMSNormParity(t *testing.T) {
	d := cudatest.Device(t)
	for _, cols := range []int{64, 3584} {
		rows := 67
		a := cudatest.Arena(t, d, 16<<20)
		rng := rand.New(rand.NewPCG(1, uint64(cols)))
		x := ktRand(rng, rows*cols, -2, 2)
		w := ktRand(rng, cols, 0.5, 1.5)
		dy := ktRand(rng, rows*cols, -1, 1)
		const eps = 1e-6
		bx, bw, bdy := ktBF16(t, d, a, x), ktBF16(t, d, a, w), ktBF16(t, d, a, dy)
		by := ktPoison(t, d, a, int64(rows*cols)*2)
		bdx := ktPoison(t, d, a, int64(rows*cols)*2)
		if err := RMSNormForward(d, by, bx, bw, rows, cols, eps); err != nil {
			t.Fatal(err)
		}
		if err := RMSNormBackward(d, bdx, bdy, bx, bw, rows, cols, eps); err != nil {
			t.Fatal(err)
		}
		want := make([]float32, rows*cols)
		model.RMSNormForward(want, x, w, rows, cols, eps)
		ktCompare(t, "rmsnorm y", ktGetBF16(t, d, by, rows*cols), want, tolBF16)
		model.RMSNormBackward(want, x, w, dy, rows, cols, eps)
		got := ktGetBF16(t, d, bdx, rows*cols)
		ktCompare(t, "rmsnorm dx", got, want, tolBF16)

		// With the residual gradient added in the same pass (in place, as the machine runs it): bit for bit
		// RMSNormBackward's output followed by AddBF16.
		res := ktRand(rng, rows*cols, -1, 1)
		bres, bsum := ktBF16(t, d, a, res), ktPoison(t, d, a, int64(rows*cols)*2)
		if err := AddBF16(d, bsum, bdx, bres, rows*cols); err != nil {
			t.Fatal(err)
		}
		if err := RMSNormBackwardAdd(d, bres, bdy, bx, bw, bres, rows, cols, eps); err != nil {
			t.Fatal(err)
		}
		sum, fused := ktGetBF16(t, d, bsum, rows*cols), ktGetBF16(t, d, bres, rows*cols)
		for i := range sum {
			if sum[i] != fused[i] {
				t.Fatalf("rmsnorm dx + res (cols %d) [%d] = %v, want %v (RMSNormBackward then AddBF16)", cols, i,
					fused[i], sum[i])
			}
		}
		for i := range want {
			want[i] += res[i]
		}
		ktCompare(t, "rmsnorm dx + res", fused, want, tolBF16)
	}
}
