package model

import (
	"math"
	"math/rand"
	"testing"

	"github.com/t2m/t2m/lora"
)

// BenchmarkTinyTrainStep is one forward + backward (LoRA gradients) of the built-in tiny model on the
// CPU: B=2, T=32, LoRA r=8 on q,k,v,o,gate,up, loss on the second half of each row. Run it with
// `go test -c -o /tmp/model.test ./model && /usr/bin/time -v /tmp/model.test -test.run '^$'
// -test.bench TinyTrainStep -test.benchtime 1x` for time and peak memory.
func BenchmarkTinyTrainStep(b *testing.B) {
	reg, err := Lookup("tiny")
	if err != nil {
		b.Fatal(err)
	}
	w, err := RandomWeights(reg.Config, reg.Seed, LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	a, err := lora.New(lora.Config{R: 8, Alpha: 16}, reg.Config.NumLayers, reg.Config.LoRADims(), 1)
	if err != nil {
		b.Fatal(err)
	}
	p, err := LoRAFromAdapter(a)
	if err != nil {
		b.Fatal(err)
	}
	const batch, seq = 2, 32
	rng := rand.New(rand.NewSource(3))
	in := Batch{IDs: make([]int32, batch*seq), Labels: make([]int32, batch*seq)}
	for i := range in.IDs {
		in.IDs[i] = int32(rng.Intn(reg.Config.VocabSize))
		in.Labels[i] = in.IDs[i]
		if i%seq < seq/2 {
			in.Labels[i] = -100
		}
	}
	g, err := Build(w, p, batch, seq, ModeLoss)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	if err := g.BuildGrad(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := g.Run(in); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	loss, err := Values(g.Loss)
	if err != nil {
		b.Fatal(err)
	}
	// Random weights give near-uniform predictions: loss ≈ ln V, well within a factor of 2.
	if l := float64(loss[0]); math.IsNaN(l) || l < 0.5*math.Log(float64(reg.Config.VocabSize)) || l > 2*math.Log(float64(reg.Config.VocabSize)) {
		b.Fatalf("loss %v, want near ln V = %.2f", l, math.Log(float64(reg.Config.VocabSize)))
	}
	b.ReportMetric(float64(loss[0]), "loss")
}
