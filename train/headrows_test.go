package train

import (
	"math/rand"
	"slices"
	"testing"

	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/model"
)

// TestCPUBackendHeadRows checks that the CPU backend trains in ModeLossHeadRows unless T2M_HEAD_ROWS=0, and
// that without dropout both give the same loss and gradients, to the bit (training and evaluation).
func TestCPUBackendHeadRows(t *testing.T) {
	cfg := smallConfig()
	w, err := model.RandomWeights(cfg, 5, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ad, err := lora.New(lora.Config{R: 4, Alpha: 8}, cfg.NumLayers, cfg.LoRADims(), 1)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := model.LoRAFromAdapter(ad)
	if err != nil {
		t.Fatal(err)
	}
	p := NewParams(lp)
	rng := rand.New(rand.NewSource(4))
	for i := 1; i < len(p.Values); i += 2 { // lora_B starts at zero: make every gradient nonzero
		for k := range p.Values[i] {
			p.Values[i][k] = 0.1 * float32(rng.NormFloat64())
		}
	}
	const batch, seq = 3, 8
	b := model.Batch{IDs: make([]int32, batch*seq), Labels: make([]int32, batch*seq)}
	for k := range b.IDs {
		b.IDs[k], b.Labels[k] = int32(rng.Intn(cfg.VocabSize)), -100
		if k%seq >= 5 || k == 9 { // completions at the ends, and one label alone in the second sequence
			b.Labels[k] = b.IDs[k]
		}
	}
	loss := func(env string, train bool) (float32, [][]float32) {
		t.Setenv(model.HeadRowsEnv, env)
		be, err := newCPUBackend(w, p)
		if err != nil {
			t.Fatal(err)
		}
		defer be.Close()
		var grads [][]float32
		if train {
			grads = make([][]float32, len(p.Values))
			for i, v := range p.Values {
				grads[i] = make([]float32, len(v))
			}
		}
		l, err := be.Loss(b, batch, seq, 1, grads)
		if err != nil {
			t.Fatal(err)
		}
		g, err := be.(*cpuBackend).train.get(batch, seq)
		if err != nil {
			t.Fatal(err)
		}
		if head := g.HeadIndex != nil; head != (env != "0") {
			t.Errorf("%s=%q: the training graph gathers head rows: %v", model.HeadRowsEnv, env, head)
		}
		return l, grads
	}
	for _, train := range []bool{true, false} {
		l0, g0 := loss("0", train)
		l1, g1 := loss("", train)
		if l0 != l1 {
			t.Errorf("train %v: loss %v over every row, %v over the head rows", train, l0, l1)
		}
		for i := range g0 {
			if !slices.Equal(g0[i], g1[i]) {
				t.Errorf("gradient of %s (value %d) differs", p.Modules[i/2], i)
			}
			if train && !slices.ContainsFunc(g1[i], func(v float32) bool { return v != 0 }) {
				t.Errorf("gradient of %s (value %d) is zero", p.Modules[i/2], i)
			}
		}
	}
}
