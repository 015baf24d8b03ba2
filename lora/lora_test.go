package lora

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/t2m/t2m/internal/bf16"
	"github.com/t2m/t2m/safetensors"
)

// tinyDims are the projections of a small Qwen2 (hidden 64, intermediate 128, 4 heads
// and 2 KV heads of 16): the model of scripts/fixtures/make_peft_fixture.py.
func tinyDims(layers int) Dims {
	return func(layer int, module string) (int, int, bool) {
		if layer < 0 || layer >= layers {
			return 0, 0, false
		}
		switch module {
		case "q_proj", "o_proj":
			return 64, 64, true
		case "k_proj", "v_proj":
			return 64, 32, true
		case "gate_proj", "up_proj":
			return 64, 128, true
		case "down_proj":
			return 128, 64, true
		}
		return 0, 0, false
	}
}

func TestScaling(t *testing.T) {
	cases := []struct {
		cfg  Config
		want float64
	}{
		{Config{R: 8, Alpha: 16}, 2},
		{Config{R: 8}, 2}, // alpha defaults to 2r
		{Config{R: 16, Alpha: 32, RSLoRA: true}, 8},
		{Config{R: 4, RSLoRA: true}, 4}, // 2r/√r = 2√r
		{Config{R: 64, Alpha: 16}, 0.25},
	}
	for _, c := range cases {
		if got := c.cfg.Scaling(); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%+v: scaling %v, want %v", c.cfg, got, c.want)
		}
	}
	for _, bad := range []Config{{R: 0}, {R: 4, Dropout: 1}, {R: 4, Targets: []string{"lm_head"}}, {R: 4, Alpha: math.NaN()}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestModulePath(t *testing.T) {
	if p, _ := ModulePath(3, "q_proj"); p != "base_model.model.model.layers.3.self_attn.q_proj" {
		t.Error(p)
	}
	if p, _ := ModulePath(0, "gate_proj"); p != "base_model.model.model.layers.0.mlp.gate_proj" {
		t.Error(p)
	}
	if _, err := ModulePath(0, "lm_head"); err == nil {
		t.Error("lm_head accepted")
	}
}

func TestInitStatistics(t *testing.T) {
	cfg := Config{R: 16, Targets: []string{"q_proj", "down_proj"}}
	a, err := New(cfg, 3, tinyDims(3), 42)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Pairs) != 6 || a.NumParams() != 3*(16*64+64*16+16*128+64*16) {
		t.Fatalf("%d pairs, %d params", len(a.Pairs), a.NumParams())
	}
	for path, p := range a.Pairs {
		bound := 1 / math.Sqrt(float64(p.In))
		var sum, sq, maxAbs float64
		for _, v := range p.A {
			sum += float64(v)
			sq += float64(v) * float64(v)
			maxAbs = math.Max(maxAbs, math.Abs(float64(v)))
		}
		n := float64(len(p.A))
		mean, variance := sum/n, sq/n-(sum/n)*(sum/n)
		// U(−b, b): mean 0 (sd b/√(3n)), variance b²/3; the max close to b.
		if math.Abs(mean) > 4*bound/math.Sqrt(3*n) {
			t.Errorf("%s: mean %v", path, mean)
		}
		if want := bound * bound / 3; math.Abs(variance-want) > 0.1*want {
			t.Errorf("%s: variance %v, want %v", path, variance, want)
		}
		if maxAbs > bound || maxAbs < 0.95*bound {
			t.Errorf("%s: max |A| %v, bound %v", path, maxAbs, bound)
		}
		for _, v := range p.B {
			if v != 0 {
				t.Fatalf("%s: B not zero", path)
			}
		}
	}
	b, _ := New(cfg, 3, tinyDims(3), 42)
	c, _ := New(cfg, 3, tinyDims(3), 43)
	p := "base_model.model.model.layers.1.mlp.down_proj"
	if !reflect.DeepEqual(a.Pairs[p].A, b.Pairs[p].A) || reflect.DeepEqual(a.Pairs[p].A, c.Pairs[p].A) {
		t.Error("init is not a function of the seed")
	}
	if _, err := New(cfg, 4, tinyDims(3), 1); err == nil || !strings.Contains(err.Error(), "layer 3") {
		t.Errorf("missing layer: %v", err)
	}
}

func fill(a *Adapter) {
	k := float32(0)
	for _, path := range a.Paths() {
		for i := range a.Pairs[path].B {
			k++
			a.Pairs[path].B[i] = k / 1000
		}
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	cfg := Config{R: 4, Alpha: 8, Dropout: 0.05, RSLoRA: true, BaseModel: "Qwen/Qwen2.5-Coder-7B-Instruct"}
	a, err := New(cfg, 2, tinyDims(2), 7)
	if err != nil {
		t.Fatal(err)
	}
	fill(a)
	dir := filepath.Join(t.TempDir(), "adapter")
	if err := a.Save(dir); err != nil {
		t.Fatal(err)
	}
	var js map[string]any
	buf, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err := json.Unmarshal(buf, &js); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4.0, "lora_alpha": 8.0,
		"lora_dropout": 0.05, "bias": "none", "fan_in_fan_out": false, "use_rslora": true, "inference_mode": true,
		"base_model_name_or_path": "Qwen/Qwen2.5-Coder-7B-Instruct"} {
		if !reflect.DeepEqual(js[k], v) {
			t.Errorf("adapter_config.json %s = %v, want %v", k, js[k], v)
		}
	}
	f, err := safetensors.Open(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	if info, err := f.Info("base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight"); err != nil || info.DType != safetensors.F32 || !reflect.DeepEqual(info.Shape, []int{32, 4}) {
		t.Errorf("k_proj lora_B: %+v %v", info, err)
	}
	f.Close()

	b, err := Load(dir, tinyDims(2))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("round trip differs: config %+v vs %+v", a.Config, b.Config)
	}
	// Saving again replaces the directory completely, leaving no temporary files.
	if err := a.Save(dir); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Dir(dir))
	if len(ents) != 1 {
		t.Errorf("leftovers next to the adapter: %v", ents)
	}
}

func TestLoadDefaultKeysAndBF16(t *testing.T) {
	a, _ := New(Config{R: 2, Alpha: 4, Targets: []string{"v_proj"}}, 1, tinyDims(1), 3)
	fill(a)
	dir := filepath.Join(t.TempDir(), "ad")
	if err := a.Save(dir); err != nil {
		t.Fatal(err)
	}
	p := a.Pairs["base_model.model.model.layers.0.self_attn.v_proj"]
	err := safetensors.Write(filepath.Join(dir, WeightsFile), []safetensors.Tensor{
		safetensors.BF16Tensor("base_model.model.model.layers.0.self_attn.v_proj.lora_A.default.weight", []int{2, 64}, p.A),
		safetensors.BF16Tensor("base_model.model.model.layers.0.self_attn.v_proj.lora_B.default.weight", []int{32, 2}, p.B),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(dir, tinyDims(1))
	if err != nil {
		t.Fatal(err)
	}
	q := b.Pairs["base_model.model.model.layers.0.self_attn.v_proj"]
	for i, v := range p.A {
		if want := bf16.ToFloat32(bf16.FromFloat32(v)); q.A[i] != want {
			t.Fatalf("A[%d] = %v, want bf16(%v) = %v", i, q.A[i], v, want)
		}
	}
}

func TestLoadShapeMismatch(t *testing.T) {
	a, _ := New(Config{R: 4}, 2, tinyDims(2), 1)
	dir := filepath.Join(t.TempDir(), "ad")
	if err := a.Save(dir); err != nil {
		t.Fatal(err)
	}
	// A base model whose k_proj is wider than the adapter's.
	wider := func(layer int, module string) (int, int, bool) {
		in, out, ok := tinyDims(2)(layer, module)
		if module == "k_proj" {
			out = 48
		}
		return in, out, ok
	}
	_, err := Load(dir, wider)
	if err == nil || !strings.Contains(err.Error(), "k_proj.lora_B.weight") || !strings.Contains(err.Error(), "[32 4]") {
		t.Errorf("shape mismatch: %v", err)
	}
	// Fewer layers than the adapter.
	if _, err := Load(dir, tinyDims(1)); err == nil || !strings.Contains(err.Error(), "layers.1.") {
		t.Errorf("extra layer: %v", err)
	}
	// Unsupported features in the config.
	buf, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	os.WriteFile(filepath.Join(dir, ConfigFile), []byte(strings.Replace(string(buf), `"use_dora": false`, `"use_dora": true`, 1)), 0o644)
	if _, err := Load(dir, tinyDims(2)); err == nil || !strings.Contains(err.Error(), "DoRA") {
		t.Errorf("DoRA: %v", err)
	}
}

func TestFailedSaveKeepsPreviousAdapter(t *testing.T) {
	a, _ := New(Config{R: 2, Targets: []string{"q_proj"}}, 1, tinyDims(1), 9)
	dir := filepath.Join(t.TempDir(), "ad")
	if err := a.Save(dir); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, WeightsFile))
	a.Pairs["base_model.model.model.layers.0.self_attn.q_proj"].B = make([]float32, 3) // corrupt
	if err := a.Save(dir); err == nil || !strings.Contains(err.Error(), "q_proj") {
		t.Errorf("bad pair saved: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, WeightsFile))
	if !bytes.Equal(before, after) {
		t.Error("failed save changed the adapter")
	}
	if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 1 {
		t.Errorf("leftovers: %v", ents)
	}
}
