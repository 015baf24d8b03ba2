package model

import (
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/t2m/t2m/internal/numtest"
	"github.com/t2m/t2m/lora"
)

// fixtureT2MAdapter is an adapter made by t2m for the fixture model: rsLoRA r=6, alpha=12 on all seven
// projections, A from lora.New, B random (non-zero) so the adapter changes the logits.
func fixtureT2MAdapter(t *testing.T, cfg Config) *lora.Adapter {
	t.Helper()
	lc := lora.Config{R: 6, Alpha: 12, RSLoRA: true, BaseModel: "t2m-fixture-qwen2-tiny",
		Targets: []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}}
	a, err := lora.New(lc, cfg.NumLayers, cfg.LoRADims(), 11)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(12))
	for _, p := range a.Pairs {
		for i := range p.B {
			p.B[i] = 0.2 * float32(rng.NormFloat64())
		}
	}
	return a
}

// TestT2MAdapterRoundTrip saves an adapter with lora.Save, loads it back through LoadAdapter and
// checks the logits are identical to those of the in-memory adapter, and differ from the base model's.
// With T2M_ADAPTER_OUT set it also leaves the adapter there (for scripts/fixtures/check_peft_load.py).
func TestT2MAdapterRoundTrip(t *testing.T) {
	f := loadFixture(t)
	a := fixtureT2MAdapter(t, f.weights.Config)
	dir := filepath.Join(t.TempDir(), "adapter")
	if out := os.Getenv("T2M_ADAPTER_OUT"); out != "" {
		dir = out
	}
	if err := a.Save(dir); err != nil {
		t.Fatal(err)
	}
	mem, err := LoRAFromAdapter(a)
	if err != nil {
		t.Fatal(err)
	}
	if len(mem.A) != 14 || mem.Scaling != float32(12/2.449489742783178) {
		t.Fatalf("%d modules, scaling %g; want 14 and 12/√6", len(mem.A), mem.Scaling)
	}
	disk, err := LoadAdapter(dir, f.weights.Config)
	if err != nil {
		t.Fatal(err)
	}
	ids := f.batch.IDs[:f.t]
	run := func(p *LoRAParams) []float32 {
		l, err := Logits(f.weights, p, ids, 1, f.t)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	lm, ld, lb := run(mem), run(disk), run(nil)
	if e := numtest.MaxAbsRel(ld, lm); e != 0 {
		t.Errorf("saved and reloaded adapter changes the logits: max relative error %.3g", e)
	}
	if e := numtest.MaxAbsRel(lm, lb); e < 1e-2 {
		t.Errorf("adapter barely changes the logits (%.3g): B should be non-zero", e)
	}
}
