//go:build t2mcuda

package machine

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/model"
	G "gorgonia.org/gorgonia"
)

// TestMachineTuneGEMMs runs a training micro-batch of the tiny Qwen2 (NF4, LoRA r=4, dropout 0.05), tunes
// the machine's weight products at two row counts with the margin off (so that cuBLASLt algorithms are
// taken), and runs the micro-batch again at both: the loss and every LoRA gradient must be bit for bit
// those of the untuned machine, every weight product must have been tuned at each row count, and some must
// now run a cuBLASLt algorithm.
func TestMachineTuneGEMMs(t *testing.T) {
	d := cudatest.Device(t)
	rng := rand.New(rand.NewPCG(43, 44))
	const B, T = 2, 32
	g, cfg := tinyTrainingGraph(t, rng, B, T, 0.05, 4)
	g.SetStep(3)
	m := testMachine(t, d, g, Options{})
	full := cudatest.CompletionBatch(rng, B, T, cfg.VocabSize, 0)
	short := cudatest.CompletionBatch(rng, 1, 24, cfg.VocabSize, 0)
	outputs := func(b model.Batch, opt RunOptions) [][]float32 {
		if err := m.RunWith(b, opt); err != nil {
			t.Fatal(err)
		}
		var out [][]float32
		for _, node := range append([]*G.Node{g.Loss}, gradNodes(g)...) {
			v, err := m.Output(node)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, slices.Clone(v))
		}
		return out
	}
	runs := []struct {
		b   model.Batch
		opt RunOptions
	}{{full, RunOptions{Rows: B, Seq: T}}, {short, RunOptions{Rows: 1, Seq: 24}}}
	var ref [][][]float32
	for _, r := range runs {
		ref = append(ref, outputs(r.b, r.opt))
	}
	shapes := map[[3]int]bool{} // distinct (out, in, backward) weight products
	for _, n := range g.G.AllNodes() {
		switch op := n.Op().(type) {
		case *model.LinearOp:
			shapes[[3]int{op.Weight.Out, op.Weight.In, 0}] = true
		case *model.LinearGradInputOp:
			shapes[[3]int{op.Lin.Weight.Out, op.Lin.Weight.In, 1}] = true
		}
	}
	saved := tuneMinGain
	tuneMinGain = -1
	res, err := m.TuneGEMMs([]int{B * T, 24})
	tuneMinGain = saved
	if err != nil {
		t.Fatal(err)
	}
	switched := 0
	for _, r := range res {
		if r.Switched {
			switched++
		}
	}
	if len(res) != 2*len(shapes) || switched == 0 {
		t.Errorf("%d products tuned (%d switched) for %d weight shapes at 2 row counts", len(res), switched, len(shapes))
	}
	for i, r := range runs {
		got := outputs(r.b, r.opt)
		for k := range got {
			if !slices.Equal(got[k], ref[i][k]) {
				t.Errorf("run %d: output %d (0: the loss, then LoRA gradients) changed after tuning", i, k)
			}
		}
	}
	t.Logf("%d products tuned, %d run a cuBLASLt algorithm; loss %.7f", len(res), switched, ref[0][0][0])
}
