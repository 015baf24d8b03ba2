package lora

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// t2mFixture is the adapter that testdata/make_peft_fixture.py loads into HF PEFT on
// the GPU machine (tiny Qwen2, two layers, all seven projections, non-zero B).
func t2mFixture(t *testing.T) *Adapter {
	all := append(append([]string(nil), DefaultTargets...), "down_proj")
	a, err := New(Config{R: 4, Alpha: 8, Dropout: 0.05, Targets: all, BaseModel: "t2m-tiny-qwen2"}, 2, tinyDims(2), 5)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, path := range a.Paths() {
		for i := range a.Pairs[path].B {
			a.Pairs[path].B[i] = float32(rng.Float64()*0.1 - 0.05)
		}
	}
	return a
}

// TestT2MAdapterFixture checks that testdata/t2m_adapter is what t2m writes; with
// T2M_WRITE_LORA_TESTDATA=1 it (re)writes it.
func TestT2MAdapterFixture(t *testing.T) {
	a := t2mFixture(t)
	dir := filepath.Join("testdata", "t2m_adapter")
	if os.Getenv("T2M_WRITE_LORA_TESTDATA") != "" {
		if err := a.Save(dir); err != nil {
			t.Fatal(err)
		}
	}
	b, err := Load(dir, tinyDims(2))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Error("testdata/t2m_adapter differs from what t2m generates: rerun with T2M_WRITE_LORA_TESTDATA=1")
	}
}
