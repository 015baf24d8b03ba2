package model

import "testing"

// Vectors names exactly the float32 tensors of a checkpoint that are not projections or lm_head, with the
// checkpoint's names: a backend that uploads them by name finds every one the definition asks for.
func TestVectorsAreCheckpointTensors(t *testing.T) {
	reg, err := Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	w, err := RandomWeights(reg.Config, 3, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := w.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int{}
	for _, tn := range ts {
		sizes[tn.Name] = len(tn.Data) / 4
	}
	vs := w.Vectors()
	if want := 1 + 2*reg.Config.NumLayers; len(vs) != want {
		t.Fatalf("%d vectors, want %d", len(vs), want)
	}
	for _, v := range vs {
		if n, ok := sizes[v.Name]; !ok || n != len(v.Values) {
			t.Errorf("vector %s (%d values): checkpoint has %d, present %v", v.Name, len(v.Values), n, ok)
		}
	}
}

// RandomNF4Weights makes a quantized model the generator runs (and the same one from the same seed).
func TestRandomNF4WeightsRun(t *testing.T) {
	reg, err := Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	w, err := RandomNF4Weights(reg.Config, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range w.Layers {
		for _, p := range l.Projections() {
			if p.W.Quant == nil || p.W.F32 != nil {
				t.Fatalf("%s is not NF4", p.Module)
			}
		}
	}
	g, err := NewGenerator(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int32{1, 2, 3, 4, 5}
	a, err := g.Generate([][]int32{prompt}, GenerateOptions{MaxNewTokens: 4})
	if err != nil {
		t.Fatal(err)
	}
	w2, _ := RandomNF4Weights(reg.Config, 5)
	g2, _ := NewGenerator(w2, nil)
	b, err := g2.Generate([][]int32{prompt}, GenerateOptions{MaxNewTokens: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(a[0]) != 4 || len(b[0]) != 4 {
		t.Fatalf("generated %d and %d tokens, want 4 each", len(a[0]), len(b[0]))
	}
	for i := range a[0] {
		if a[0][i] != b[0][i] {
			t.Fatalf("same seed, different outputs: %v vs %v", a[0], b[0])
		}
	}
}
