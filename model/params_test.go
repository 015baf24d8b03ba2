package model

import "testing"

// NumParams of the 7B shape: 28 layers of 233,046,016 projection weights plus 2 × 152064 × 3584.
func TestNumParams(t *testing.T) {
	reg, err := Lookup("qwen2.5-coder-7b")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := reg.Config.NumParams(), int64(28*233046016+2*152064*3584); got != want {
		t.Errorf("7B: NumParams %d, want %d", got, want)
	}
	tiny, err := Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	// H 64, I 128, QDim 64, KVDim 32: 4096 + 4096 + 4096 + 24576 per layer.
	if got, want := tiny.Config.NumParams(), int64(2*36864+2*152064*64); got != want {
		t.Errorf("tiny: NumParams %d, want %d", got, want)
	}
}
