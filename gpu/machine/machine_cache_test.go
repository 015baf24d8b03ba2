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

// TestMachineWeightCache runs one training micro-batch of the tiny Qwen2 (NF4, LoRA r=4, dropout 0.05) on a
// machine that dequantizes every NF4 weight at each use, one that keeps bf16 copies of all of them, and one
// whose budget holds exactly the weights of the smallest size: the loss and every LoRA gradient must be bit
// for bit the same (a copy is what each use would dequantize), the budget must pick the smallest weights
// first, and the all-cached machine must launch no dequantization and hold no dequantization scratch. A
// cache filled with anything but the dequantized weight, or a budget that is ignored, fails it.
func TestMachineWeightCache(t *testing.T) {
	d := cudatest.Device(t)
	rng := rand.New(rand.NewPCG(41, 42))
	const B, T = 2, 32
	g, cfg := tinyTrainingGraph(t, rng, B, T, 0.05, 4)
	g.SetStep(7)
	plain := testMachine(t, d, g, Options{})
	var sizes []int64
	for _, w := range plain.lin {
		if w.nf4 != nil {
			sizes = append(sizes, int64(w.out*w.in)*2)
		}
	}
	slices.Sort(sizes)
	if len(sizes) < 2 || sizes[0] == sizes[len(sizes)-1] {
		t.Fatalf("NF4 weight sizes %v: the tiny model does not exercise the order", sizes)
	}
	smallest := 0
	for smallest < len(sizes) && sizes[smallest] == sizes[0] {
		smallest++
	}
	all := testMachine(t, d, g, Options{WeightCacheBytes: 1 << 30})
	some := testMachine(t, d, g, Options{WeightCacheBytes: int64(smallest)*sizes[0] + sizes[0] - 1})
	if b, n := all.WeightCache(); n != len(sizes) {
		t.Errorf("a 1 GiB budget cached %d of %d NF4 weights (%d bytes)", n, len(sizes), b)
	}
	if b, n := some.WeightCache(); n != smallest || b != int64(smallest)*sizes[0] {
		t.Errorf("a budget for the %d smallest weights (%d bytes each) cached %d weights, %d bytes", smallest, sizes[0], n, b)
	}
	for f, w := range some.lin {
		if plain.lin[f].nf4 != nil && w.nf4 == nil && int64(w.out*w.in)*2 != sizes[0] {
			t.Errorf("cached %s [%d, %d] before the smallest weights", f.Name, w.out, w.in)
		}
	}
	if cb, _ := all.WeightCache(); all.scratch.Bytes != 0 || some.scratch.Bytes == 0 || cb == 0 {
		t.Errorf("dequantization scratch: %d bytes with every weight cached (want none), %d with some", all.scratch.Bytes, some.scratch.Bytes)
	}
	batch := cudatest.CompletionBatch(rng, B, T, cfg.VocabSize, 0)
	outputs := func(m *Machine) [][]float32 {
		m.SetProfile(true)
		if err := m.Run(batch); err != nil {
			t.Fatal(err)
		}
		var out [][]float32
		for _, node := range append([]*G.Node{g.Loss}, gradNodes(g)...) {
			v, err := m.Output(node)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
		return out
	}
	ref := outputs(plain)
	for name, m := range map[string]*Machine{"all cached": all, "smallest cached": some} {
		got := outputs(m)
		for k := range ref {
			if !slices.Equal(got[k], ref[k]) {
				t.Errorf("%s: output %d (0: the loss, then LoRA gradients) differs from the uncached machine's", name, k)
			}
		}
	}
	const kind = "of which NF4 dequantize"
	if n0, n1, n2 := plain.prof.launches[kind], all.prof.launches[kind], some.prof.launches[kind]; n0 == 0 || n1 != 0 || !(n2 > 0 && n2 < n0) {
		t.Errorf("dequantizations: %d uncached, %d all cached (want 0), %d smallest cached (want between)", n0, n1, n2)
	}
	t.Logf("loss %.7f; %d NF4 weights, %d of the smallest size (%d bytes)", ref[0][0], len(sizes), smallest, sizes[0])
}

// gradNodes is every LoRA gradient node of g, A then B per adapter.
func gradNodes(g *model.Graph) []*G.Node {
	var out []*G.Node
	for _, l := range g.LoRA {
		out = append(out, l.GradA, l.GradB)
	}
	return out
}
