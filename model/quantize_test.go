package model

import (
	"testing"

	"github.com/t2m/t2m/internal/numtest"
)

// TestFixtureNF4 loads the fixture with --quantize nf4: the seven projections per layer become NF4, the
// graph runs them through dequantization, and its logits equal those of a float32 model holding the
// dequantized matrices (same math, so ≤ 1e-6); each projection carries NF4's expected error.
func TestFixtureNF4(t *testing.T) {
	f := loadFixture(t)
	q, err := LoadDir(fixtureDir, LoadOptions{Quantize: QuantizeNF4})
	if err != nil {
		t.Fatal(err)
	}
	deq, err := LoadDir(fixtureDir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range q.Layers {
		for j, p := range l.Projections() {
			if p.W.F32 != nil || p.W.Quant == nil {
				t.Fatalf("%s is not quantized", p.W.Name)
			}
			d, err := p.W.Dense()
			if err != nil {
				t.Fatal(err)
			}
			deq.Layers[i].Projections()[j].W.F32 = d
		}
	}
	if q.LMHead.Quant != nil || q.LMHead.F32 == nil {
		t.Fatal("lm_head must stay unquantized")
	}
	logits := func(w *Weights) []float32 {
		g, err := Build(w, nil, f.b, f.t, ModeLogits)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		if err := g.Run(f.batch); err != nil {
			t.Fatal(err)
		}
		v, err := Values(g.Logits)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	lq, ld := logits(q), logits(deq)
	if e := numtest.MaxAbsRel(lq, ld); e > 1e-6 {
		t.Errorf("NF4 graph vs dequantized float32 graph: max relative error %.3g > 1e-6", e)
	}
	// Weight level: NF4's 16 levels on N(0, σ²) blocks leave a relative RMS error near 0.1.
	orig, err := LoadDir(fixtureDir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range orig.Layers {
		for j, p := range l.Projections() {
			if e := numtest.RelL2(deq.Layers[i].Projections()[j].W.F32, p.W.F32); e < 0.05 || e > 0.15 {
				t.Errorf("%s: NF4 relative RMS error %.3g outside [0.05, 0.15]", p.W.Name, e)
			}
		}
	}
	e := numtest.MaxAbsRel(lq, f.ref(t, "base.logits"))
	if e == 0 {
		t.Error("NF4 logits equal the unquantized ones: quantization did not happen")
	}
	t.Logf("NF4 vs bf16 HF logits: max relative error %.3g", e)
}
