//go:build t2mcuda

package machine

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/gpu/ops"
	"github.com/t2m/t2m/model"
)

// BenchmarkMachineDropout times a training step (Run + Step) of the real graph at the 7B's layer width
// (hidden 3584, intermediate 18944, GQA 28/4, NF4, LoRA r=8 on q,k,v,o,gate,up; B=4, T=512) with 2 layers
// and a 4096-token vocabulary (random weights are made on the CPU), without and with LoRA dropout 0.05:
// the difference per layer is what dropout costs the 28-layer step. Reports ms/step and the activation
// plan in GiB.
func BenchmarkMachineDropout(b *testing.B) {
	d := cudatest.Device(b)
	mc := model.Config{HiddenSize: 3584, IntermediateSize: 18944, NumLayers: 2, NumHeads: 28, NumKVHeads: 4,
		HeadDim: 128, VocabSize: 4096, RMSNormEps: 1e-6, RopeTheta: 1e6, MaxPositionEmbeddings: 32768, Dtype: "bfloat16"}
	w, err := model.RandomWeights(mc, 1, model.LoadOptions{Quantize: model.QuantizeNF4})
	if err != nil {
		b.Fatal(err)
	}
	const B, T, r = 4, 512, 8
	rng := rand.New(rand.NewPCG(5, 6))
	ids, labels := make([]int32, B*T), make([]int32, B*T)
	for i := range ids {
		ids[i] = int32(rng.IntN(mc.VocabSize))
		labels[i] = ids[i]
		if i%T < T*7/10 {
			labels[i] = -100
		}
	}
	batch := model.Batch{IDs: ids, Labels: labels}
	for _, p := range []float32{0, 0.05} {
		b.Run(fmt.Sprintf("dropout=%g", p), func(b *testing.B) {
			if err := d.Bind(); err != nil {
				b.Fatal(err)
			}
			lp := &model.LoRAParams{Rank: r, Scaling: 2, Dropout: p, A: map[string][]float32{}, B: map[string][]float32{}}
			for _, l := range w.Layers {
				for _, pr := range l.Projections()[:6] { // q, k, v, o, gate, up
					a, bm := make([]float32, r*pr.W.In), make([]float32, pr.W.Out*r)
					for i := range a {
						a[i] = float32(rng.NormFloat64() * 0.01)
					}
					for i := range bm {
						bm[i] = float32(rng.NormFloat64() * 0.01)
					}
					lp.A[pr.Module], lp.B[pr.Module] = a, bm
				}
			}
			g, err := model.Build(w, lp, B, T, model.ModeLoss)
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			if err := g.BuildGrad(); err != nil {
				b.Fatal(err)
			}
			free, _, err := d.MemInfo()
			if err != nil {
				b.Fatal(err)
			}
			m, err := New(d, g, free-(1<<30))
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			h := ops.AdamWHyper{LR: 2e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
			step := func(s int) {
				g.SetStep(uint64(s))
				if err := m.Run(batch); err != nil {
					b.Fatal(err)
				}
				if err := m.Step(h, 1); err != nil {
					b.Fatal(err)
				}
			}
			step(0) // warm-up
			b.ResetTimer()
			for i := range b.N {
				step(i + 1)
			}
			if err := d.Sync(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			total, _ := m.PlannedBytes()
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/step")
			b.ReportMetric(cuda.GiB(total), "GiB-plan")
		})
	}
}
