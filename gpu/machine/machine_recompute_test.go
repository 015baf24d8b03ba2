//go:build t2mcuda

package machine

import (
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/internal/numtest"
	"github.com/t2m/t2m/model"
	G "gorgonia.org/gorgonia"
)

// TestMachineRecompute runs one training graph of the tiny Qwen2 (NF4, LoRA r=4 with dropout 0.05 on every
// projection) on two machines, one with activation recomputation: the loss and every LoRA gradient must
// agree within 1e-6 relative (the recomputed launches are the same kernels on the same inputs), for the
// full [2, 32] batch and shorter [1, 24] and [2, 24] ones, while the recomputing machine plans fewer
// activation bytes and repeats some launches. Replacing the backward's reads of recomputed values by stale
// buffers, or recomputing with different dropout masks, would be far outside that bound. Both loss modes: in
// ModeLossHeadRows the last layer's recomputed launches include the gather and the head rows' ops, and the
// labels are on the last quarter of each sequence so that the head rows are fewer than the Run's rows.
func TestMachineRecompute(t *testing.T) {
	for _, c := range []struct {
		name string
		mode model.Mode
	}{{"loss", model.ModeLoss}, {"head rows", model.ModeLossHeadRows}} {
		t.Run(c.name, func(t *testing.T) { machineRecompute(t, c.mode) })
	}
}

func machineRecompute(t *testing.T, mode model.Mode) {
	d := cudatest.Device(t)
	rng := rand.New(rand.NewPCG(71, 72))
	const B, T = 2, 32
	w, lp := cudatest.TinyLoRA(t, rng, 4, 0.05)
	g, cfg := trainingGraph(t, w, lp, B, T, mode), w.Config
	g.SetStep(9)
	plain := testMachine(t, d, g, Options{})
	recomp := testMachine(t, d, g, Options{Recompute: true})
	p0, _ := plain.PlannedBytes()
	p1, _ := recomp.PlannedBytes()
	t.Logf("activation plan: %d bytes, %d with recomputation (%d launches repeated)", p0, p1, recomp.Recomputed())
	if recomp.Recomputed() == 0 || p1 >= p0 {
		t.Errorf("recomputation repeats %d launches and plans %d bytes (%d without): want some, and fewer bytes",
			recomp.Recomputed(), p1, p0)
	}
	for _, shape := range [][2]int{{B, T}, {1, 24}, {2, 24}} {
		rows, seq := shape[0], shape[1]
		batch := cudatest.CompletionBatch(rng, rows, seq, cfg.VocabSize, 0)
		if mode == model.ModeLossHeadRows {
			for k := range batch.Labels {
				if k%seq < seq*3/4 {
					batch.Labels[k] = -100
				}
			}
		}
		o := RunOptions{Rows: rows, Seq: seq}
		if err := plain.RunWith(batch, o); err != nil {
			t.Fatal(err)
		}
		if err := recomp.RunWith(batch, o); err != nil {
			t.Fatal(err)
		}
		if mode == model.ModeLossHeadRows && rows > 1 && recomp.headRows >= rows*seq {
			t.Errorf("[%d, %d]: %d head rows: the test does not leave rows out", rows, seq, recomp.headRows)
		}
		l0, err := plain.Output(g.Loss)
		if err != nil {
			t.Fatal(err)
		}
		l1, err := recomp.Output(g.Loss)
		if err != nil {
			t.Fatal(err)
		}
		worst := numtest.RelL2(l1[:1], []float64{float64(l0[0])})
		for _, l := range g.LoRA {
			for _, node := range []*G.Node{l.GradA, l.GradB} {
				a, err := plain.Output(node)
				if err != nil {
					t.Fatal(err)
				}
				b, err := recomp.Output(node)
				if err != nil {
					t.Fatal(err)
				}
				ref := make([]float64, len(a))
				for k, v := range a {
					ref[k] = float64(v)
				}
				worst = max(worst, numtest.RelL2(b, ref))
			}
		}
		t.Logf("[%d, %d]: loss %.7f, %.7f with recomputation (head rows %d of %d); worst relative difference %.3g",
			rows, seq, l0[0], l1[0], recomp.headRows, rows*seq, worst)
		if !(worst <= 1e-6) {
			t.Errorf("[%d, %d]: recomputation changes the loss or gradients by %.3g relative", rows, seq, worst)
		}
	}
}
