//go:build t2mcuda

package machine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/gpu/ops"
	"github.com/t2m/t2m/internal/numtest"
	"github.com/t2m/t2m/model"
	G "gorgonia.org/gorgonia"
)

// TestMachineLogits runs the tiny Qwen2 (7B architecture: GQA, biases, untied lm_head, vocab 152064)
// forward on the GPU machine and on the CPU TapeMachine, with and without NF4 and LoRA, and compares each
// layer's hidden state and the logits. Tolerance 2e-2 relative: bf16 activations and weights through two
// layers (each op alone is within 1e-2 of its CPU twin); the CPU path is float32 on the same (NF4) weights.
func TestMachineLogits(t *testing.T) {
	d := cudatest.Device(t)
	reg, err := model.Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	const B, T = 2, 24
	for _, c := range []struct {
		name      string
		nf4, lora bool
	}{{"bf16", false, false}, {"nf4", true, false}, {"nf4+lora", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			d.Bind()
			opt := model.LoadOptions{}
			if c.nf4 {
				opt.Quantize = model.QuantizeNF4
			}
			w, err := model.RandomWeights(reg.Config, reg.Seed, opt)
			if err != nil {
				t.Fatal(err)
			}
			var lp *model.LoRAParams
			if c.lora {
				lp = cudatest.RandomLoRA(w, 4, rng)
			}
			g, err := model.Build(w, lp, B, T, model.ModeLogits)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			ids := make([]int32, B*T)
			for i := range ids {
				ids[i] = int32(rng.IntN(reg.Config.VocabSize))
			}
			mask := make([]int32, B*T)
			for i := range mask {
				mask[i] = 1
			}
			for i := 0; i < 5; i++ { // left padding on the second sequence
				mask[T+i] = 0
			}
			batch := model.Batch{IDs: ids, Mask: mask}
			if err := g.Run(batch); err != nil {
				t.Fatal(err)
			}
			m, err := New(d, g, 2<<30, g.Hidden...)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			total, floor := m.PlannedBytes()
			t.Logf("activation plan: %d bytes (floor %d)", total, floor)
			if err := m.Run(batch); err != nil {
				t.Fatal(err)
			}
			for k, node := range append(g.Hidden, g.Logits) {
				got, err := m.Output(node)
				if err != nil {
					t.Fatal(err)
				}
				want, err := model.Values(node)
				if err != nil {
					t.Fatal(err)
				}
				ref := make([]float64, len(want))
				for j, v := range want {
					ref[j] = float64(v)
				}
				e := numtest.RelL2(got, ref)
				name := fmt.Sprintf("hidden %d", k)
				if node == g.Logits {
					name = "logits"
				}
				t.Logf("%s: relative error %.3g", name, e)
				if !(e <= 2e-2) {
					t.Errorf("%s: relative error %.3g > 2e-2", name, e)
				}
			}
		})
	}
}

// TestMachineLossGrads runs a training graph (loss, gorgonia.Grad's backward) of the tiny Qwen2 with NF4
// weights and LoRA on every projection, on the GPU machine and on the CPU, and compares the loss and
// every LoRA gradient. Tolerances, fixed before the first run: loss 1e-2 relative (bf16 activations), each
// gradient tensor 5e-2 relative L2 (bf16 activations and bf16 gradients through every backward op of two
// layers, fp32 only in the LoRA GEMMs' accumulation and outputs).
func TestMachineLossGrads(t *testing.T) { machineLossGrads(t, 0, 4) }

// TestMachineDropoutLossGrads is TestMachineLossGrads on a graph with LoRA dropout 0.05 (DropoutOp and
// LoRAGradOp 'X' on every projection), both executors at the same dropout step, same tolerances: the
// GPU's masks are the CPU's bit for bit (TestDropoutMatchesCPU), so only bf16 rounding differs.
func TestMachineDropoutLossGrads(t *testing.T) { machineLossGrads(t, 0.05, 4) }

// TestMachineRank8DropoutLossGrads is TestMachineDropoutLossGrads with LoRA rank 8 and 16, the ranks whose
// dropped input gradient summed into its input's gradient (ops.LoRADropoutAdd) has its own kernels; rank 4
// above runs the generic one.
func TestMachineRank8DropoutLossGrads(t *testing.T) {
	for _, r := range []int{8, 16} {
		t.Run(fmt.Sprint("r", r), func(t *testing.T) { machineLossGrads(t, 0.05, r) })
	}
}

// tinyTrainingGraph builds the training graph [B, T] (loss and gorgonia.Grad's backward) of the tiny Qwen2
// with NF4 weights and LoRA of the given rank and dropout on every projection, closed when the test ends.
func tinyTrainingGraph(t *testing.T, rng *rand.Rand, B, T int, dropout float32, rank int) (*model.Graph, model.Config) {
	t.Helper()
	w, lp := cudatest.TinyLoRA(t, rng, rank, dropout)
	return trainingGraph(t, w, lp, B, T, model.ModeLoss), w.Config
}

// trainingGraph builds w's training graph [B, T] in mode (a loss mode) with lp, closed when the test ends.
func trainingGraph(t *testing.T, w *model.Weights, lp *model.LoRAParams, B, T int, mode model.Mode) *model.Graph {
	t.Helper()
	g, err := model.Build(w, lp, B, T, mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	if err := g.BuildGrad(); err != nil {
		t.Fatal(err)
	}
	return g
}

func machineLossGrads(t *testing.T, dropout float32, rank int) {
	d := cudatest.Device(t)
	rng := rand.New(rand.NewPCG(21, 22))
	const B, T = 2, 32
	g, cfg := tinyTrainingGraph(t, rng, B, T, dropout, rank)
	g.SetStep(7) // seeds the dropout masks of both executors
	ids, labels, mask := make([]int32, B*T), make([]int32, B*T), make([]int32, B*T)
	for i := range ids {
		ids[i] = int32(rng.IntN(cfg.VocabSize))
		labels[i], mask[i] = ids[i], 1
		if i%T < T/2 { // completion-only loss on the second half
			labels[i] = -100
		}
	}
	for i := 0; i < 3; i++ { // left padding on the second sequence
		mask[T+i] = 0
	}
	batch := model.Batch{IDs: ids, Mask: mask, Labels: labels}
	if err := g.Run(batch); err != nil {
		t.Fatal(err)
	}
	m := testMachine(t, d, g, Options{})
	total, floor := m.PlannedBytes()
	t.Logf("activation plan: %d bytes (floor %d), %d nodes", total, floor, len(m.order))
	// Every layer's two residual sums run inside RMSNorm's backward, and at least one input-gradient GEMM per
	// layer accumulates in place (foldSums): the comparisons below then cover those paths.
	folds := map[string]int{}
	for _, f := range m.sumFold {
		folds[fmt.Sprintf("%T", f.term.Op())]++
	}
	t.Logf("folded sums: %v", folds)
	if L := cfg.NumLayers; folds["*model.RMSNormGradOp"] < 2*L-1 || folds["*model.LinearGradInputOp"] < L {
		t.Errorf("folded sums %v, want at least %d RMSNorm and %d GEMM folds for %d layers", folds, 2*L-1, L, L)
	}
	// With LoRA dropout, every LoRA linear's h and dA drop the input as they read it (readDropouts).
	if want := map[bool]int{true: len(g.LoRA)}[dropout > 0 && m.loraGradOn(rank)]; len(m.dropRead) != want {
		t.Errorf("%d LoRA dropouts read as used, want %d", len(m.dropRead), want)
	}
	if err := m.Run(batch); err != nil {
		t.Fatal(err)
	}
	compare := func(name string, tol float64, gpu []float32, cpu []float32) {
		ref := make([]float64, len(cpu))
		for j, v := range cpu {
			ref[j] = float64(v)
		}
		e := numtest.RelL2(gpu, ref)
		t.Logf("%s: relative error %.3g (tolerance %g)", name, e, tol)
		if !(e <= tol) {
			t.Errorf("%s: relative error %.3g > %g", name, e, tol)
		}
	}
	gotLoss, err := m.Output(g.Loss)
	if err != nil {
		t.Fatal(err)
	}
	wantLoss, err := model.Values(g.Loss)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loss: GPU %.6f, CPU %.6f", gotLoss[0], wantLoss[0])
	compare("loss", 1e-2, gotLoss[:1], wantLoss[:1])
	for _, l := range g.LoRA {
		for _, p := range []struct {
			tag  string
			node *G.Node
		}{{"A", l.GradA}, {"B", l.GradB}} {
			node := p.node
			got, err := m.Output(node)
			if err != nil {
				t.Fatal(err)
			}
			want, err := model.Values(node)
			if err != nil {
				t.Fatal(err)
			}
			compare(l.Module+" d"+p.tag, 5e-2, got, want)
		}
	}
}

// TestMachineStep checks the optimizer wiring: after Run and Step, the global grad norm and every fp32
// master equal a float64 host computation of torch's clip_grad_norm_ + AdamW from the device's own
// gradients (tolerance 1e-5 on the norm, 1e-4 relative L2 on the update p − p0); then a few steps on
// the same batch must lower the loss.
func TestMachineStep(t *testing.T) {
	d := cudatest.Device(t)
	reg, err := model.Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(31, 32))
	const B, T = 2, 16
	w, err := model.RandomWeights(reg.Config, reg.Seed, model.LoadOptions{Quantize: model.QuantizeNF4})
	if err != nil {
		t.Fatal(err)
	}
	g, err := model.Build(w, cudatest.RandomLoRA(w, 4, rng), B, T, model.ModeLoss)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.BuildGrad(); err != nil {
		t.Fatal(err)
	}
	ids, labels := make([]int32, B*T), make([]int32, B*T)
	for i := range ids {
		ids[i] = int32(rng.IntN(1000))
		labels[i] = ids[i]
		if i%T < T/2 {
			labels[i] = -100
		}
	}
	batch := model.Batch{IDs: ids, Labels: labels}
	m, err := New(d, g, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	o := m.opt
	if err := m.Run(batch); err != nil {
		t.Fatal(err)
	}
	p0, gr := make([]float32, o.n), make([]float32, o.n)
	if err := cuda.Download(d, p0, o.master); err != nil {
		t.Fatal(err)
	}
	if err := cuda.Download(d, gr, o.g); err != nil {
		t.Fatal(err)
	}
	h := ops.AdamWHyper{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
	const maxNorm = 0.5
	if err := m.Step(h, maxNorm); err != nil {
		t.Fatal(err)
	}
	norm, clip, err := m.GradNorm()
	if err != nil {
		t.Fatal(err)
	}
	var ss float64
	for _, x := range gr {
		ss += float64(x) * float64(x)
	}
	wantNorm := math.Sqrt(ss)
	wantClip := math.Min(1, maxNorm/(wantNorm+1e-6))
	t.Logf("grad norm %.6g (host %.6g), clip %.4g (host %.4g), %d parameters", norm, wantNorm, clip, wantClip, o.n)
	if math.Abs(float64(norm)-wantNorm) > 1e-5*wantNorm || math.Abs(float64(clip)-wantClip) > 1e-5 {
		t.Errorf("grad norm %g / clip %g, host %g / %g", norm, clip, wantNorm, wantClip)
	}
	p1 := make([]float32, o.n)
	if err := cuda.Download(d, p1, o.master); err != nil {
		t.Fatal(err)
	}
	got, want := make([]float32, o.n), make([]float64, o.n)
	for i := range p1 {
		gi := float64(gr[i]) * wantClip
		mi, vi := (1-h.Beta1)*gi, (1-h.Beta2)*gi*gi
		p := float64(p0[i]) * (1 - h.LR*h.WeightDecay)
		p -= h.LR / (1 - h.Beta1) * mi / (math.Sqrt(vi)/math.Sqrt(1-h.Beta2) + h.Eps)
		got[i], want[i] = p1[i]-p0[i], p-float64(p0[i])
	}
	if e := numtest.RelL2(got, want); !(e <= 1e-4) {
		t.Errorf("AdamW update: relative error %.3g > 1e-4", e)
	} else {
		t.Logf("AdamW update: relative error %.3g", e)
	}
	var losses []float32
	for s := 0; s < 5; s++ {
		if err := m.Run(batch); err != nil {
			t.Fatal(err)
		}
		l, err := m.Output(g.Loss)
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, l[0])
		if err := m.Step(h, 1); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("losses over 5 steps: %v", losses)
	if !(losses[4] < losses[0]) {
		t.Errorf("loss did not go down: %v", losses)
	}
}

// TestMachineProfileKinds checks the launch profile's kinds on the tiny training graph: one profiled Run,
// every LinearGradInputOp and RMSNormGradOp timed once under its own kind, those folded into a gradient sum
// (which launch as the sum) included, with device time under each.
func TestMachineProfileKinds(t *testing.T) {
	d := cudatest.Device(t)
	rng := rand.New(rand.NewPCG(31, 32))
	const B, T = 2, 32
	g, cfg := tinyTrainingGraph(t, rng, B, T, 0.05, 8)
	m := testMachine(t, d, g, Options{})
	want := map[string]int{}
	folded := 0
	for i, node := range m.order {
		if k := opKind(node); (k == "LinearGradInputOp" || k == "RMSNormGradOp") && m.alias[i] == i {
			want[k]++
			if m.foldSkip[node] {
				folded++
			}
		}
	}
	if folded == 0 || len(want) != 2 {
		t.Fatalf("%d folded terms among %v: the graph does not exercise the folds", folded, want)
	}
	ids, labels := make([]int32, B*T), make([]int32, B*T)
	for i := range ids {
		ids[i] = int32(rng.IntN(cfg.VocabSize))
		labels[i] = ids[i]
	}
	m.SetProfile(true)
	if err := m.Run(model.Batch{IDs: ids, Labels: labels}); err != nil {
		t.Fatal(err)
	}
	ms, runs := m.Profile()
	if runs != 1 {
		t.Fatalf("%d profiled runs, want 1", runs)
	}
	for k, n := range want {
		if got := m.prof.launches[k]; got != n || !(ms[k] > 0) {
			t.Errorf("%s: %d timed launches (%.4f ms), want %d (%d folded terms of both kinds)", k, got, ms[k], n, folded)
		}
	}
}

// testMachine is NewWithOptions on the test device with a 2 GiB arena for g, closed when the test ends.
func testMachine(t *testing.T, d *cuda.Device, g *model.Graph, o Options) *Machine {
	t.Helper()
	m, err := NewWithOptions(d, g, 2<<30, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}
