//go:build t2mcuda

package ops

import (
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/model"
)

func TestAddParity(t *testing.T) {
	d := cudatest.Device(t)
	a := cudatest.Arena(t, d, 16<<20)
	rng := rand.New(rand.NewPCG(4, 4))
	const n = 67 * 3584
	x, y := ktRand(rng, n, -4, 4), ktRand(rng, n, -4, 4)
	want := make([]float32, n)
	model.AddForward(want, x, y)

	bx, by, bo := ktBF16(t, d, a, x), ktBF16(t, d, a, y), ktPoison(t, d, a, n*2)
	if err := AddBF16(d, bo, bx, by, n); err != nil {
		t.Fatal(err)
	}
	ktCompare(t, "add bf16", ktGetBF16(t, d, bo, n), want, tolBF16)
	// In place: y aliasing a.
	if err := AddBF16(d, bx, bx, by, n); err != nil {
		t.Fatal(err)
	}
	ktCompare(t, "add bf16 in place", ktGetBF16(t, d, bx, n), want, tolBF16)

	fx, fy, fo := ktUp(t, d, a, x), ktUp(t, d, a, y), ktPoison(t, d, a, n*4)
	if err := AddF32(d, fo, fx, fy, n); err != nil {
		t.Fatal(err)
	}
	ktCompare(t, "add f32", ktGetF32(t, d, fo, n), want, tolF32)
}
