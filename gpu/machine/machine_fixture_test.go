//go:build t2mcuda

package machine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/internal/numtest"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/safetensors"
)

// fixtureDir finds model's tiny Qwen2 fixture (scripts/fixtures/make_qwen2_fixture.py) with its HF
// transformers 5.17 / PEFT 0.21 references: from the package folder (go test) or the repository root
// (bin/gpu-machine.test run on the GPU machine).
func fixtureDir(t *testing.T) string {
	for _, dir := range []string{"../../model/testdata/qwen2_tiny", "model/testdata/qwen2_tiny"} {
		if _, err := os.Stat(filepath.Join(dir, "references.safetensors")); err == nil {
			return dir
		}
	}
	t.Fatal("model/testdata/qwen2_tiny not found from the package folder or the repository root")
	return ""
}

// TestMachineFixture runs the fixture model on the GPU machine and compares with HF's references:
// hidden states and logits of the base model and with the PEFT adapter, the completion-only loss and every
// LoRA gradient. The CPU path matches these to 1e-4 (forward) and 1e-3 (gradients) in fp32; the GPU runs
// bf16 activations and weights, so the tolerances are those of the GPU-vs-CPU machine tests, fixed before
// this test first ran: 2e-2 relative L2 for hidden states and logits, 1e-2 for the loss, 5e-2 per gradient.
func TestMachineFixture(t *testing.T) {
	d := cudatest.Device(t)
	fixtureDir := fixtureDir(t)
	w, err := model.LoadDir(fixtureDir, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refs, err := safetensors.Open(filepath.Join(fixtureDir, "references.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer refs.Close()
	ref := func(name string) []float32 {
		v, err := refs.Float32(name)
		if err != nil {
			t.Fatalf("references: %v", err)
		}
		return v
	}
	ints := func(name string) []int32 {
		v := ref(name)
		out := make([]int32, len(v))
		for i, x := range v {
			out[i] = int32(x)
		}
		return out
	}
	info, err := refs.Info("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	B, T := info.Shape[0], info.Shape[1]
	batch := model.Batch{IDs: ints("input_ids"), Mask: ints("attention_mask"), Labels: ints("labels"),
		NumItems: ref("num_items")[0]}
	adapter, err := model.LoadAdapter(filepath.Join(fixtureDir, "adapter"), w.Config)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got, want []float32, tol float64) {
		t.Helper()
		r := make([]float64, len(want))
		for i, v := range want {
			r[i] = float64(v)
		}
		e := numtest.RelL2(got[:len(want)], r)
		t.Logf("%s: relative error %.3g (tolerance %g)", name, e, tol)
		if !(e <= tol) {
			t.Errorf("%s: relative error %.3g > %g", name, e, tol)
		}
	}
	for _, c := range []struct {
		prefix string
		lora   *model.LoRAParams
	}{{"base", nil}, {"lora", adapter}} {
		g, err := model.Build(w, c.lora, B, T, model.ModeLogits)
		if err != nil {
			t.Fatal(err)
		}
		m, err := New(d, g, 256<<20, g.Hidden...)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Run(batch); err != nil {
			t.Fatal(err)
		}
		names := []string{"emb", "layer0", "layer1", "norm"}
		for k, node := range g.Hidden {
			got, err := m.Output(node)
			if err != nil {
				t.Fatal(err)
			}
			check(c.prefix+".hidden."+names[k], got, ref(c.prefix+".hidden."+names[k]), 2e-2)
		}
		got, err := m.Output(g.Logits)
		if err != nil {
			t.Fatal(err)
		}
		check(c.prefix+".logits", got, ref(c.prefix+".logits"), 2e-2)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		g.Close()
	}
	g, err := model.Build(w, adapter, B, T, model.ModeLoss)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.BuildGrad(); err != nil {
		t.Fatal(err)
	}
	m, err := New(d, g, 256<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Run(batch); err != nil {
		t.Fatal(err)
	}
	loss, err := m.Output(g.Loss)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loss: GPU %.6f, PEFT %.6f", loss[0], ref("lora.loss")[0])
	check("lora.loss", loss[:1], ref("lora.loss"), 1e-2)
	for _, l := range g.LoRA {
		for _, p := range []struct{ which, name string }{{"lora_A", "A"}, {"lora_B", "B"}} {
			node := l.GradA
			if p.name == "B" {
				node = l.GradB
			}
			got, err := m.Output(node)
			if err != nil {
				t.Fatal(err)
			}
			check(l.Module+" d"+p.name, got, ref("grad.base_model.model."+l.Module+"."+p.which+".weight"), 5e-2)
		}
	}
}
