//go:build t2mcuda

package gpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/internal/numtest"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

// TestPackedBatchOnGPU checks a packed micro-batch on the machine: three sequences of 150, 91 and 133 tokens
// (segments that start inside attention's 64-row tiles, so query tiles skip and mask keys of earlier
// sequences) packed into [1, 376] on a machine reserved for [1, 456] give the loss and LoRA gradients of the
// same sequences in rows of their own ([3, 152] on a machine of that shape), and those of the CPU backend on
// the packed batch. LoRA dropout is off: its masks are drawn over the layout.
func TestPackedBatchOnGPU(t *testing.T) {
	cudatest.Device(t)
	rng := rand.New(rand.NewPCG(71, 72))
	w, lp := cudatest.TinyLoRA(t, rng, 4, 0)
	p := train.NewParams(lp)
	vocab := w.Config.VocabSize
	var seqs []data.Sequence
	for _, n := range []int{150, 91, 133} {
		ids := make([]int32, n)
		for i := range ids {
			ids[i] = int32(rng.IntN(vocab))
		}
		seqs = append(seqs, data.Sequence{IDs: ids, PromptLen: n / 3})
	}
	packed, pn := train.PackBatch(seqs, 8, 0)
	rows, rt := train.RowsBatch(seqs, 8, 0)
	type result struct {
		loss  float32
		grads [][]float32
	}
	run := func(name string, b model.Batch, batch, seq, reserveB, reserveT int) result {
		f, ok := train.LookupBackend(name)
		if !ok {
			t.Fatalf("no %s backend registered", name)
		}
		be, err := f(w, p)
		if err != nil {
			t.Fatal(err)
		}
		defer be.Close()
		if r, ok := be.(train.ShapeReserver); ok {
			if err := r.Reserve(reserveB, reserveT); err != nil {
				t.Fatal(err)
			}
		}
		g := zeroGrads(p)
		l, err := be.Loss(b, batch, seq, 0, g)
		if err != nil {
			t.Fatalf("%s [%d, %d]: %v", name, batch, seq, err)
		}
		return result{l, g}
	}
	gpuPacked := run("cuda", packed, 1, pn, 1, 456)
	gpuRows := run("cuda", rows, 3, rt, 3, rt)
	cpuPacked := run("cpu", packed, 1, pn, 0, 0)
	for _, c := range []struct {
		name          string
		want          result
		lossTol, gTol float64
	}{{"the GPU's rows", gpuRows, 2e-3, 2e-2}, {"the CPU's packed batch", cpuPacked, 1e-2, 5e-2}} {
		got := gpuPacked
		t.Logf("loss packed %.6f, %s %.6f", got.loss, c.name, c.want.loss)
		if e := math.Abs(float64(got.loss-c.want.loss)) / math.Abs(float64(c.want.loss)); !(e <= c.lossTol) {
			t.Errorf("loss relative error %.3g against %s > %g", e, c.name, c.lossTol)
		}
		worst := 0.0
		for i := range got.grads {
			worst = max(worst, numtest.RelL2(got.grads[i], c.want.grads[i]))
		}
		t.Logf("worst gradient relative error against %s: %.3g", c.name, worst)
		if !(worst <= c.gTol) {
			t.Errorf("gradients differ from %s's by %.3g > %g", c.name, worst, c.gTol)
		}
	}
}
