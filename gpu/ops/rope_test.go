//go:build t2mcuda

package ops

import (
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/model"
)

func TestRoPEParity(t *testing.T) {
	d := cudatest.Device(t)
	cases := []struct {
		batch, seq, heads, headDim int
		theta                      float32
	}{
		{2, 37, 4, 16, 10000},  // the tiny fixture model's head
		{2, 300, 3, 128, 1e6},  // Qwen2.5-7B's head and base
		{1, 4096, 1, 128, 1e6}, // long positions: large angles
	}
	for _, c := range cases {
		a := cudatest.Arena(t, d, 64<<20)
		rng := rand.New(rand.NewPCG(2, uint64(c.seq)))
		rows, width := c.batch*c.seq, c.heads*c.headDim
		x := ktRand(rng, rows*width, -2, 2)
		// Left padding on the first sequence: positions from the mask, as HF's generate makes them.
		mask := make([]int32, rows)
		for i := range mask {
			mask[i] = 1
		}
		for i := range min(5, c.seq-1) {
			mask[i] = 0
		}
		pos := model.PositionsFromMask(mask, c.batch, c.seq)
		bx, bp := ktBF16(t, d, a, x), ktUp(t, d, a, pos)
		by := ktPoison(t, d, a, int64(rows*width)*2)
		if err := RoPE(d, by, bx, bp, rows, c.heads, c.headDim, c.theta, false); err != nil {
			t.Fatal(err)
		}
		want := make([]float32, rows*width)
		model.RoPEForward(want, x, pos, rows, c.heads, c.headDim, c.theta)
		ktCompare(t, "rope forward", ktGetBF16(t, d, by, rows*width), want, tolBF16)
		// Backward, in place on a copy of x (y aliasing x).
		bdx := ktBF16(t, d, a, x)
		if err := RoPE(d, bdx, bdx, bp, rows, c.heads, c.headDim, c.theta, true); err != nil {
			t.Fatal(err)
		}
		model.RoPEBackward(want, x, pos, rows, c.heads, c.headDim, c.theta)
		ktCompare(t, "rope backward (in place)", ktGetBF16(t, d, bdx, rows*width), want, tolBF16)

		// The table path: one table, then forward out of place and backward in place.
		cs := ktPoison(t, d, a, RoPETableBytes(rows, c.headDim))
		if err := RoPETable(d, cs, bp, rows, c.headDim, c.theta); err != nil {
			t.Fatal(err)
		}
		by = ktPoison(t, d, a, int64(rows*width)*2)
		if err := RoPEApply(d, by, bx, cs, rows, c.heads, c.headDim, false); err != nil {
			t.Fatal(err)
		}
		model.RoPEForward(want, x, pos, rows, c.heads, c.headDim, c.theta)
		ktCompare(t, "rope table forward", ktGetBF16(t, d, by, rows*width), want, tolBF16)
		if err := RoPEApply(d, bx, bx, cs, rows, c.heads, c.headDim, true); err != nil {
			t.Fatal(err)
		}
		model.RoPEBackward(want, x, pos, rows, c.heads, c.headDim, c.theta)
		ktCompare(t, "rope table backward (in place)", ktGetBF16(t, d, bx, rows*width), want, tolBF16)
	}
}
