package model

import (
	"strings"
	"testing"

	"github.com/t2m/t2m/internal/numtest"
)

// A model with the adapter merged gives the logits of the base model with the adapter applied unmerged
// (float32 throughout: only the summation order differs).
func TestMergeLoRAMatchesUnmerged(t *testing.T) {
	cfg := smallConfig()
	w, err := RandomWeights(cfg, 3, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lp := randomLoRA(w, 4, 5)
	ids := randomIDs(9, cfg.VocabSize, 7)
	want, err := Logits(w, lp, ids, 1, len(ids))
	if err != nil {
		t.Fatal(err)
	}
	base, err := Logits(w, nil, ids, 1, len(ids))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.MergeLoRA(lp); err != nil {
		t.Fatal(err)
	}
	got, err := Logits(w, nil, ids, 1, len(ids))
	if err != nil {
		t.Fatal(err)
	}
	if d := numtest.RelL2(got, want); d > 1e-5 {
		t.Errorf("merged vs unmerged logits: rel L2 %.2e", d)
	}
	if d := numtest.RelL2(base, want); d < 1e-2 {
		t.Fatalf("the adapter hardly changes the logits (%.2e): the test would not notice a missing merge", d)
	}
}

// MergeLoRA refuses NF4 weights and adapters that do not fit, without touching the weights.
func TestMergeLoRARefuses(t *testing.T) {
	cfg := smallConfig()
	wq, err := RandomWeights(cfg, 3, LoadOptions{Quantize: QuantizeNF4})
	if err != nil {
		t.Fatal(err)
	}
	if err := wq.MergeLoRA(randomLoRA(wq, 2, 1)); err == nil || !strings.Contains(err.Error(), "NF4") {
		t.Errorf("NF4 merge: %v", err)
	}
	w, err := RandomWeights(cfg, 3, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := append([]float32(nil), w.Layers[0].Q.W.F32...)
	bad := randomLoRA(w, 2, 1)
	bad.A["model.layers.1.mlp.down_proj"] = bad.A["model.layers.1.mlp.down_proj"][:3]
	if err := w.MergeLoRA(bad); err == nil || !strings.Contains(err.Error(), "down_proj") {
		t.Errorf("short lora_A: %v", err)
	}
	alien := randomLoRA(w, 2, 1)
	alien.A["model.layers.9.mlp.up_proj"], alien.B["model.layers.9.mlp.up_proj"] = []float32{1}, []float32{1}
	if err := w.MergeLoRA(alien); err == nil || !strings.Contains(err.Error(), "layers.9") {
		t.Errorf("module of a layer the model lacks: %v", err)
	}
	if numtest.MaxAbs(before, w.Layers[0].Q.W.F32) != 0 {
		t.Error("a refused merge changed the weights")
	}
}

// FloatTensors lists each checkpoint tensor once with its shape; lm_head only when untied; NF4 is refused.
func TestFloatTensors(t *testing.T) {
	cfg := smallConfig()
	for _, tied := range []bool{false, true} {
		cfg.TieWordEmbeddings = tied
		w, err := RandomWeights(cfg, 3, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ts, err := w.FloatTensors()
		if err != nil {
			t.Fatal(err)
		}
		want := 1 + cfg.NumLayers*(2+7+3) + 1 // embed, per layer 2 norms + 7 weights + 3 biases, norm
		if !tied {
			want++
		}
		seen := map[string]bool{}
		for _, x := range ts {
			n := 1
			for _, d := range x.Shape {
				n *= d
			}
			if n != len(x.Data) || seen[x.Name] {
				t.Errorf("%s: shape %v with %d values (seen before: %v)", x.Name, x.Shape, len(x.Data), seen[x.Name])
			}
			seen[x.Name] = true
		}
		if len(ts) != want || seen["lm_head.weight"] == tied {
			t.Errorf("tied %v: %d tensors, want %d; lm_head listed %v", tied, len(ts), want, seen["lm_head.weight"])
		}
	}
	wq, err := RandomWeights(cfg, 3, LoadOptions{Quantize: QuantizeNF4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wq.FloatTensors(); err == nil {
		t.Error("NF4 weights listed as float tensors")
	}
}
