//go:build t2mcuda

package ops

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/model"
)

// TestHeadRowsGatherScatter runs the head rows' gather and scatter on model.HeadRows' layout of random labels
// against their CPU twins, bit for bit (both copy bf16 rows): every gathered row, zero rows included (the
// outputs are poisoned first), and every scattered row, the rows no index names zeroed.
func TestHeadRowsGatherScatter(t *testing.T) {
	d := cudatest.Device(t)
	a := cudatest.Arena(t, d, 16<<20)
	rng := rand.New(rand.NewPCG(6, 6))
	const batch, seq, cols = 3, 37, 8 * 40
	n := batch * seq
	labels := make([]int32, n)
	for k := range labels {
		labels[k] = -100
		if rng.IntN(3) == 0 {
			labels[k] = int32(rng.IntN(1000))
		}
	}
	index, _, rows, err := model.HeadRows(labels, batch, seq)
	if err != nil {
		t.Fatal(err)
	}
	if rows == 0 || rows == n {
		t.Fatalf("head rows %d of %d: the test needs some rows left out and some kept", rows, n)
	}
	x := ktRand(rng, n*cols, -2, 2)
	bx, bi := ktBF16(t, d, a, x), ktUp(t, d, a, index)
	by := ktPoison(t, d, a, int64(n*cols*2))
	if err := GatherRows(d, by, bx, bi, rows, n, cols); err != nil {
		t.Fatal(err)
	}
	want := make([]float32, n*cols)
	if err := model.GatherRows(want, x, index, n, cols); err != nil {
		t.Fatal(err)
	}
	if got := ktGetBF16(t, d, by, rows*cols); !slices.Equal(got, want[:rows*cols]) {
		t.Errorf("gathered rows differ from model.GatherRows'")
	}

	dy := ktRand(rng, n*cols, -2, 2)
	bdy, bdx := ktBF16(t, d, a, dy), ktPoison(t, d, a, int64(n*cols*2))
	if err := ScatterRows(d, bdx, bdy, bi, rows, n, cols); err != nil {
		t.Fatal(err)
	}
	if err := model.ScatterRows(want, dy, index, n, cols); err != nil {
		t.Fatal(err)
	}
	if got := ktGetBF16(t, d, bdx, n*cols); !slices.Equal(got, want) {
		t.Errorf("scattered rows differ from model.ScatterRows'")
	}
	// No head rows (a micro-batch without targets): dx is zero.
	if err := ScatterRows(d, bdx, bdy, bi, 0, n, cols); err != nil {
		t.Fatal(err)
	}
	if got := ktGetBF16(t, d, bdx, n*cols); slices.ContainsFunc(got, func(v float32) bool { return v != 0 }) {
		t.Error("scatter of no rows left a nonzero value")
	}
}
