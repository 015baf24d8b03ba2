package lora

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/t2m/t2m/internal/bf16"
)

// t2mFixture is the adapter that scripts/fixtures/make_peft_fixture.py loads into HF PEFT on
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

// TestLoadPEFTAdapter loads testdata/peft_adapter, written by PEFT 0.21's
// save_pretrained (scripts/fixtures/make_peft_fixture.py), and testdata/peft_adapter_default,
// the same weights in bf16 under model.state_dict()'s ".default" key names.
func TestLoadPEFTAdapter(t *testing.T) {
	a, err := Load(filepath.Join("testdata", "peft_adapter"), tinyDims(2))
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"}
	if c := a.Config; c.R != 4 || c.Alpha != 8 || !c.RSLoRA || c.Dropout != 0.05 || !reflect.DeepEqual(c.Targets, all) {
		t.Errorf("config %+v", c)
	}
	if got := a.Config.Scaling(); got != 4 { // rsLoRA: 8/√4
		t.Errorf("scaling %v, want 4", got)
	}
	if len(a.Pairs) != 14 {
		t.Fatalf("%d pairs, want 14", len(a.Pairs))
	}
	// PEFT's own initialization obeys the bound New uses: |A| ≤ 1/√in, and comes close.
	for path, p := range a.Pairs {
		bound := 1 / math.Sqrt(float64(p.In))
		var m float64
		for _, v := range p.A {
			m = math.Max(m, math.Abs(float64(v)))
		}
		if m > bound || m < 0.9*bound {
			t.Errorf("%s: PEFT's max |A| = %v, bound 1/√%d = %v", path, m, p.In, bound)
		}
	}

	d, err := Load(filepath.Join("testdata", "peft_adapter_default"), tinyDims(2))
	if err != nil {
		t.Fatal(err)
	}
	for path, p := range a.Pairs {
		q := d.Pairs[path]
		if q == nil {
			t.Fatalf("%s missing from the .default adapter", path)
		}
		want := append(append([]float32(nil), p.A...), p.B...)
		got := append(append([]float32(nil), q.A...), q.B...)
		for i, v := range want {
			if w := bf16.ToFloat32(bf16.FromFloat32(v)); got[i] != w {
				t.Fatalf("%s: A‖B[%d] = %v, want bf16(%v) = %v", path, i, got[i], v, w)
			}
		}
	}
}
