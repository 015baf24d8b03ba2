//go:build t2mcuda

package ops

import (
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/model"
)

func TestSwiGLUParity(t *testing.T) {
	d := cudatest.Device(t)
	a := cudatest.Arena(t, d, 16<<20)
	rng := rand.New(rand.NewPCG(3, 3))
	const n = 37 * 128 * 8 // [rows, intermediate] flattened; a multiple of 8
	gate, up, dh := ktRand(rng, n, -6, 6), ktRand(rng, n, -2, 2), ktRand(rng, n, -1, 1)
	bg, bu, bdh := ktBF16(t, d, a, gate), ktBF16(t, d, a, up), ktBF16(t, d, a, dh)
	bh, bdg, bdu := ktPoison(t, d, a, n*2), ktPoison(t, d, a, n*2), ktPoison(t, d, a, n*2)
	if err := SwiGLUForward(d, bh, bg, bu, n); err != nil {
		t.Fatal(err)
	}
	if err := SwiGLUBackward(d, bdg, bdu, bdh, bg, bu, n); err != nil {
		t.Fatal(err)
	}
	want := make([]float32, n)
	model.SwiGLUForward(want, gate, up)
	ktCompare(t, "swiglu h", ktGetBF16(t, d, bh, n), want, tolBF16)
	wdg, wdu := make([]float32, n), make([]float32, n)
	model.SwiGLUBackward(wdg, wdu, gate, up, dh)
	ktCompare(t, "swiglu dgate", ktGetBF16(t, d, bdg, n), wdg, tolBF16)
	ktCompare(t, "swiglu dup", ktGetBF16(t, d, bdu, n), wdu, tolBF16)
}
