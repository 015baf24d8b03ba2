//go:build t2mcuda

package machine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/internal/numtest"
	"github.com/t2m/t2m/model"
	G "gorgonia.org/gorgonia"
)

// TestMachineHeadRowsLossGrads runs a ModeLossHeadRows training graph of the tiny Qwen2 (NF4, LoRA on every
// projection: rank 4 without and with LoRA dropout 0.05, and rank 8 with it, whose LoRA products and dropouts
// read as used run ops.LoRAGrad's kernels on the head rows) on the GPU machine built for [3, 32], and compares
// each Run's loss and LoRA gradients with the CPU's ModeLossHeadRows graph of the Run's shape (same weights,
// adapter, batch and dropout step; the CPU of that shape is what a Run of a smaller shape promises): the full
// [3, 32] (a right-padded row) and a smaller [2, 24], each with labels on the last quarter of every sequence so
// that the head rows are fewer than the Run's rows (HeadRows' rows rounded up to 8, not whole blocks of T).
// Tolerances as TestMachineLossGrads: loss 1e-2 relative, each gradient 5e-2 relative L2 (bf16 activations).
// A last [2, 24] Run without any label (NumItems from a window) must give a zero loss and zero gradients, not
// the previous Run's.
func TestMachineHeadRowsLossGrads(t *testing.T) {
	for _, c := range []struct {
		rank    int
		dropout float32
	}{{4, 0}, {4, 0.05}, {8, 0.05}} {
		t.Run(fmt.Sprintf("r%d dropout=%g", c.rank, c.dropout), func(t *testing.T) { machineHeadRows(t, c.rank, c.dropout) })
	}
}

func machineHeadRows(t *testing.T, rank int, dropout float32) {
	d := cudatest.Device(t)
	rng := rand.New(rand.NewPCG(81, 82))
	const B, T = 3, 32
	w, lp := cudatest.TinyLoRA(t, rng, rank, dropout)
	g := trainingGraph(t, w, lp, B, T, model.ModeLossHeadRows)
	m := testMachine(t, d, g, Options{})
	kinds := map[string]int{}
	for i, h := range m.head {
		if h {
			kinds[opKind(m.order[i])]++
		}
	}
	t.Logf("nodes on the head rows: %v; LoRA dropouts read as used: %d", kinds, len(m.dropRead))
	if kinds["GatherRowsOp"] != 2 || kinds["LMHeadCrossEntropyGradOp"] != 1 || kinds["LoRAGradOp A"] != 4 {
		t.Fatalf("nodes on the head rows %v: want the 2 gathers, the loss's gradient and the last layer's 4 dA", kinds)
	}
	for k, c := range []struct {
		rows, seq, from int // labels at positions ≥ from of each sequence
	}{{B, T, T * 3 / 4}, {2, 24, 18}, {2, 24, 24}} {
		batch := cudatest.CompletionBatch(rng, c.rows, c.seq, w.Config.VocabSize, 4)
		for i := range batch.Labels {
			if i%c.seq < c.from {
				batch.Labels[i] = -100
			}
		}
		targets := model.CountCompletionTokens(batch.Labels, c.rows, c.seq)
		batch.NumItems = float32(targets + 5) // as in a window of several micro-batches
		step := uint64(11 + k)
		g.SetStep(step)
		if err := m.RunWith(batch, RunOptions{Rows: c.rows, Seq: c.seq}); err != nil {
			t.Fatal(err)
		}
		_, _, rows, err := model.HeadRows(batch.Labels, c.rows, c.seq)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("[%d, %d] (%d targets, %d head rows)", c.rows, c.seq, targets, m.headRows)
		if want := max(rows+7, 8) / 8 * 8; m.headRows != want || m.headRows >= c.rows*c.seq {
			t.Fatalf("%s: want %d rows (HeadRows' %d rounded up to 8), fewer than the Run's %d", name, want, rows, c.rows*c.seq)
		}
		cpu := trainingGraph(t, w, lp, c.rows, c.seq, model.ModeLossHeadRows)
		cpu.SetStep(step)
		if err := cpu.Run(batch); err != nil {
			t.Fatal(err)
		}
		compare := func(what string, tol float64, gpu, ref []float32) {
			if targets == 0 { // nothing to learn from: exact zeros
				if slices.ContainsFunc(gpu, func(v float32) bool { return v != 0 }) {
					t.Errorf("%s %s: nonzero without targets", name, what)
				}
				return
			}
			r := make([]float64, len(ref))
			for j, v := range ref {
				r[j] = float64(v)
			}
			if e := numtest.RelL2(gpu, r); !(e <= tol) {
				t.Errorf("%s %s: relative error %.3g > %g", name, what, e, tol)
			}
		}
		gl, err := m.Output(g.Loss)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := model.Values(cpu.Loss)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: loss GPU %.6f, CPU %.6f", name, gl[0], cl[0])
		compare("loss", 1e-2, gl[:1], cl[:1])
		for j, l := range g.LoRA {
			for _, p := range []struct {
				tag      string
				gpu, cpu *G.Node
			}{{"A", l.GradA, cpu.LoRA[j].GradA}, {"B", l.GradB, cpu.LoRA[j].GradB}} {
				got, err := m.Output(p.gpu)
				if err != nil {
					t.Fatal(err)
				}
				want, err := model.Values(p.cpu)
				if err != nil {
					t.Fatal(err)
				}
				compare(l.Module+" d"+p.tag, 5e-2, got, want)
			}
		}
	}
}
