//go:build t2mcuda

package ops

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/train"
)

func TestGradNormClipParity(t *testing.T) {
	d := cudatest.Device(t)
	a := cudatest.Arena(t, d, 32<<20)
	rng := rand.New(rand.NewPCG(9, 9))
	const n = 1234567
	g := ktRand(rng, n, -0.01, 0.01)
	// The CPU twin: train.ClipGradNorm (torch.nn.utils.clip_grad_norm_'s total_norm); maxNorm 0 only measures.
	norm := train.ClipGradNorm([][]float32{slices.Clone(g)}, 0)
	bg := ktUp(t, d, a, g)
	scratch := ktPoison(t, d, a, GradNormScratchBytes())
	for _, maxNorm := range []float32{float32(norm / 3), 1e3, 0} {
		out := ktPoison(t, d, a, 8)
		if err := GradNormClip(d, out, bg, scratch, n, maxNorm); err != nil {
			t.Fatal(err)
		}
		scale := 1.0
		if maxNorm > 0 {
			scale = min(1, float64(maxNorm)/(norm+1e-6))
		}
		got := ktGetF32(t, d, out, 2)
		ktCompare(t, "grad norm", got[:1], []float32{float32(norm)}, tolF32)
		ktCompare(t, "clip scale", got[1:], []float32{float32(scale)}, tolF32)
		if maxNorm == float32(norm/3) {
			if err := GradScale(d, bg, out.Slice(4, 4), n); err != nil {
				t.Fatal(err)
			}
			want := make([]float32, n)
			for i, x := range g {
				want[i] = x * got[1]
			}
			ktCompare(t, "scaled grads", ktGetF32(t, d, bg, n), want, tolF32)
			if err := cuda.Upload(d, bg, g); err != nil {
				t.Fatal(err)
			}
		}
	}
}
