package model

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t2m/t2m/internal/numtest"
	"github.com/t2m/t2m/safetensors"
	G "gorgonia.org/gorgonia"
)

// The fixture in testdata/qwen2_tiny was written by scripts/fixtures/make_qwen2_fixture.py with
// transformers 5.17 and peft 0.21: bf16 weights upcast to fp32, eager attention, B=2, T=12, row 1
// right-padded by 3 tokens.
const fixtureDir = "testdata/qwen2_tiny"

type fixture struct {
	refs     *safetensors.File
	weights  *Weights
	batch    Batch
	b, t     int
	numItems float32
}

func loadFixture(t *testing.T) *fixture {
	t.Helper()
	w, err := LoadDir(fixtureDir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refs, err := safetensors.Open(filepath.Join(fixtureDir, "references.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { refs.Close() })
	f := &fixture{refs: refs, weights: w}
	info, err := refs.Info("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	f.b, f.t = info.Shape[0], info.Shape[1]
	ints := func(name string) []int32 {
		v := f.ref(t, name)
		out := make([]int32, len(v))
		for i, x := range v {
			out[i] = int32(x)
		}
		return out
	}
	f.batch = Batch{IDs: ints("input_ids"), Mask: ints("attention_mask"), Labels: ints("labels")}
	f.numItems = f.ref(t, "num_items")[0]
	f.batch.NumItems = f.numItems
	return f
}

func (f *fixture) ref(t *testing.T, name string) []float32 {
	t.Helper()
	v, err := f.refs.Float32(name)
	if err != nil {
		t.Fatalf("references: %v", err)
	}
	return v
}

// loadPEFTAdapter reads the fixture's PEFT adapter (written by peft 0.21) through lora.Load.
func loadPEFTAdapter(t *testing.T, dir string) *LoRAParams {
	t.Helper()
	cfg, err := LoadConfig(fixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := LoadAdapter(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p.Rank != 4 || p.Scaling != 2 || len(p.A) != 12 {
		t.Fatalf("adapter: rank %d, scaling %g, %d modules; want 4, 8/4, 12", p.Rank, p.Scaling, len(p.A))
	}
	return p
}

func (f *fixture) checkHidden(t *testing.T, g *Graph, prefix string) {
	t.Helper()
	names := []string{"emb"}
	for i := range f.weights.Config.NumLayers {
		names = append(names, fmt.Sprintf("layer%d", i))
	}
	names = append(names, "norm")
	if len(names) != len(g.Hidden) {
		t.Fatalf("graph has %d hidden states, want %d", len(g.Hidden), len(names))
	}
	for i, name := range names {
		got, err := Values(g.Hidden[i])
		if err != nil {
			t.Fatal(err)
		}
		want := f.ref(t, prefix+".hidden."+name)
		// fp32 both sides; the bound leaves room for summation order only.
		if e := numtest.MaxAbsRel(got, want); e > 1e-4 {
			t.Errorf("%s hidden %s: max relative error %.3g > 1e-4", prefix, name, e)
		} else {
			t.Logf("%s hidden %s: max relative error %.3g", prefix, name, e)
		}
	}
}

func testFixtureLogits(t *testing.T, lora *LoRAParams, prefix string) {
	f := loadFixture(t)
	g, err := Build(f.weights, lora, f.b, f.t, ModeLogits)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Run(f.batch); err != nil {
		t.Fatal(err)
	}
	f.checkHidden(t, g, prefix)
	got, err := Values(g.Logits)
	if err != nil {
		t.Fatal(err)
	}
	if e := numtest.MaxAbsRel(got, f.ref(t, prefix+".logits")); e > 1e-4 {
		t.Errorf("%s logits: max relative error %.3g > 1e-4", prefix, e)
	} else {
		t.Logf("%s logits: max relative error %.3g", prefix, e)
	}
}

func TestFixtureLogitsBase(t *testing.T) { testFixtureLogits(t, nil, "base") }

func TestFixtureLogitsLoRA(t *testing.T) {
	testFixtureLogits(t, loadPEFTAdapter(t, filepath.Join(fixtureDir, "adapter")), "lora")
}

// TestFixtureLossAndGrads checks the completion-only loss and every LoRA gradient against PEFT's.
func TestFixtureLossAndGrads(t *testing.T) {
	f := loadFixture(t)
	lora := loadPEFTAdapter(t, filepath.Join(fixtureDir, "adapter"))
	g, err := Build(f.weights, lora, f.b, f.t, ModeLoss)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.BuildGrad(); err != nil {
		t.Fatal(err)
	}
	if err := g.Run(f.batch); err != nil {
		t.Fatal(err)
	}
	loss, err := Values(g.Loss)
	if err != nil {
		t.Fatal(err)
	}
	want := f.ref(t, "lora.loss")[0]
	if e := math.Abs(float64(loss[0]-want)) / math.Abs(float64(want)); e > 1e-5 {
		t.Errorf("loss %.7f, PEFT %.7f (relative error %.3g > 1e-5)", loss[0], want, e)
	}
	if len(g.LoRA) != 2*6 {
		t.Fatalf("%d adapted modules, want 12", len(g.LoRA))
	}
	worst := 0.0
	for _, l := range g.LoRA {
		for _, p := range []struct {
			which string
			node  *G.Node
		}{{"lora_A", l.GradA}, {"lora_B", l.GradB}} {
			n := p.node
			got, err := Values(n)
			if err != nil {
				t.Fatal(err)
			}
			want := f.ref(t, "grad.base_model.model."+l.Module+"."+p.which+".weight")
			e := numtest.MaxAbsRel(got, want)
			worst = math.Max(worst, e)
			// gradients go through twice as many fp32 reductions as the forward: 1e-3, ten times the
			// forward's 1e-4.
			if e > 1e-3 {
				t.Errorf("d loss / d %s.%s: max relative error %.3g > 1e-3", l.Module, p.which, e)
			}
		}
	}
	t.Logf("loss %.7f (PEFT %.7f); worst LoRA gradient max relative error %.3g", loss[0], want, worst)
}

func TestRunBadBatch(t *testing.T) {
	for _, mode := range []Mode{ModeLoss, ModeLossHeadRows} {
		testRunBadBatch(t, mode)
	}
}

// testRunBadBatch: in ModeLossHeadRows too, a bad label is named at its place in the batch, not in the
// gathered layout the loss reads.
func testRunBadBatch(t *testing.T, mode Mode) {
	f := loadFixture(t)
	g, err := Build(f.weights, nil, 1, 3, mode)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, tc := range []struct {
		b    Batch
		want string
	}{
		{Batch{IDs: []int32{1, 2}}, "2 token ids"},
		{Batch{IDs: []int32{1, 2, 3}, Mask: []int32{1, -1, 1}, Labels: []int32{1, 2, 3}}, "mask value -1"},
		{Batch{IDs: []int32{1, 2, 3}, Positions: []int32{0, -1, 2}, Labels: []int32{1, 2, 3}}, "negative"},
		{Batch{IDs: []int32{1, 2, 3}}, "0 labels"},
		{Batch{IDs: []int32{1, 2, 999}, Labels: []int32{1, 2, 3}}, "outside the vocabulary"},
		{Batch{IDs: []int32{1, 2, 3}, Labels: []int32{1, 2, 300}}, "label 300 at row 0, position 2"},
		{Batch{IDs: []int32{1, 2, 3}, Labels: []int32{-100, -100, -100}}, "no completion token"},
	} {
		err := g.Run(tc.b)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("mode %d: Run(%+v): error %v, want one containing %q", mode, tc.b, err, tc.want)
		}
	}
}

func TestBuildRejectsForeignAdapterModule(t *testing.T) {
	f := loadFixture(t)
	lora := loadPEFTAdapter(t, filepath.Join(fixtureDir, "adapter"))
	lora.A["model.layers.7.self_attn.q_proj"] = make([]float32, 4*64)
	lora.B["model.layers.7.self_attn.q_proj"] = make([]float32, 64*4)
	if _, err := Build(f.weights, lora, 1, 2, ModeLogits); err == nil || !strings.Contains(err.Error(), "layers.7.self_attn.q_proj") {
		t.Errorf("Build with an adapter module for layer 7 of a 2-layer model: error %v", err)
	}
}
