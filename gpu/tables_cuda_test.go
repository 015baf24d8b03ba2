//go:build t2mcuda

package gpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/internal/bf16"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

// bf16TablesPair returns two copies of the tiny NF4 model (untied lm_head) whose embedding and lm_head hold
// the same bf16-representable values: one as float32, one as bf16 (model.LoadOptions.BF16Tables).
func bf16TablesPair(t *testing.T) (wide, narrow *model.Weights) {
	t.Helper()
	reg, err := model.Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	load := func() *model.Weights {
		w, err := model.RandomWeights(reg.Config, reg.Seed, model.LoadOptions{Quantize: model.QuantizeNF4})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	wide, narrow = load(), load()
	if reg.Config.TieWordEmbeddings {
		t.Fatal("the tiny model ties lm_head: the pair would not cover a separate bf16 lm_head")
	}
	for _, pair := range [][2]*model.Frozen{{wide.Embed, narrow.Embed}, {wide.LMHead, narrow.LMHead}} {
		bits := make([]uint16, len(pair[0].F32))
		for i, x := range pair[0].F32 {
			bits[i] = bf16.FromFloat32(x)
			pair[0].F32[i] = bf16.ToFloat32(bits[i])
		}
		pair[1].F32, pair[1].BF16 = nil, bits
	}
	return wide, narrow
}

// TestBF16TablesOnGPU: bf16 tables (uploaded as they are) and the same values in float32 tables (rounded on
// upload, to the same bits) give bit-identical GPU results: the training machine's loss and LoRA gradients,
// and the generator's tokens.
func TestBF16TablesOnGPU(t *testing.T) {
	cudatest.Device(t)
	wide, narrow := bf16TablesPair(t)
	fg, ok := train.LookupBackend("cuda")
	if !ok {
		t.Fatal("no cuda backend registered")
	}
	rng := rand.New(rand.NewPCG(71, 72))
	lp := cudatest.RandomLoRA(wide, 4, rng)
	mb := backendBatch(rng, 2, 40, wide.Config.VocabSize)
	var losses []float32
	var grads [][][]float32
	for _, w := range []*model.Weights{wide, narrow} {
		p := train.NewParams(lp)
		b, err := fg(w, p)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.(train.ShapeReserver).Reserve(2, 64); err != nil {
			t.Fatal(err)
		}
		g := zeroGrads(p)
		l, err := b.Loss(mb, 2, 40, 1, g)
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		losses, grads = append(losses, l), append(grads, g)
	}
	if math.Float32bits(losses[0]) != math.Float32bits(losses[1]) {
		t.Errorf("training loss %v with float32 tables, %v with bf16 tables", losses[0], losses[1])
	}
	for i := range grads[0] {
		if !slices.Equal(grads[0][i], grads[1][i]) {
			t.Errorf("LoRA gradient %d differs between float32 and bf16 tables", i)
		}
	}
	var outs [][][]int32
	prompts := [][]int32{{1, 2, 3, 4, 5}, {9, 8, 7}}
	for _, w := range []*model.Weights{wide, narrow} {
		g, err := (cudaBackend{}).NewGenerator(w, nil, GeneratorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		o, err := g.Generate(prompts, model.GenerateOptions{MaxNewTokens: 12})
		g.Close()
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, o)
	}
	for i := range prompts {
		if !slices.Equal(outs[0][i], outs[1][i]) {
			t.Errorf("prompt %d: %v with float32 tables, %v with bf16 tables", i, outs[0][i], outs[1][i])
		}
	}
}
