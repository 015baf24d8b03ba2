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

// TestArgmaxParity compares argmax_f32 with model.Argmax on random logits (152064 and 1001 columns) with
// planted ties (the first index must win), a maximum in the last column, and a constant row.
func TestArgmaxParity(t *testing.T) {
	d := cudatest.Device(t)
	rng := rand.New(rand.NewPCG(31, 32))
	for _, V := range []int{152064, 1001} {
		t.Run(fmt.Sprint(V), func(t *testing.T) {
			d.Bind()
			a := cudatest.Arena(t, d, 64<<20)
			const rows = 6
			x := make([]float32, rows*V)
			for i := range x {
				x[i] = float32(rng.NormFloat64() * 3)
			}
			x[1*V+7], x[1*V+V-3] = 50, 50 // tie: index 7
			x[2*V+V-1] = 60               // last column
			for i := range V {            // constant row: index 0
				x[3*V+i] = -1.5
			}
			x[4*V+500], x[4*V+40] = 70, 70 // tie, the later index written first: index 40
			ids := ktPoison(t, d, a, rows*4)
			if err := ArgmaxF32(d, ids, ktUp(t, d, a, x), rows, V); err != nil {
				t.Fatal(err)
			}
			got := make([]int32, rows)
			if err := cuda.Download(d, got, ids); err != nil {
				t.Fatal(err)
			}
			for r := range rows {
				if want := model.Argmax(x[r*V : (r+1)*V]); got[r] != want {
					t.Errorf("row %d: argmax %d, want %d", r, got[r], want)
				}
			}
		})
	}
}
