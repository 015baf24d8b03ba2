//go:build t2mcuda

package gpu

import (
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/t2m/t2m/model"
)

// benchMachine times full training steps (Machine.Run + Machine.Step) of the real model graph: a Qwen2 of
// cfg's shape with random NF4 weights made on the CPU by model.RandomWeights (so keep Layers and Vocab
// small: this is for comparing the graph machine with the hand-written step of the same shape).
func benchMachine(d *Device, cfg BenchConfig, log io.Writer) (*BenchResult, error) {
	mc := model.Config{HiddenSize: cfg.Hidden, IntermediateSize: cfg.Intermediate, NumLayers: cfg.Layers,
		NumHeads: cfg.Heads, NumKVHeads: cfg.KVHeads, HeadDim: cfg.HeadDim, VocabSize: cfg.Vocab, RMSNormEps: 1e-6,
		RopeTheta: 1e6, MaxPositionEmbeddings: 32768, Dtype: "bfloat16"}
	t0 := time.Now()
	w, err := model.RandomWeights(mc, 1, model.LoadOptions{Quantize: model.QuantizeNF4})
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(3, 3))
	lp := &model.LoRAParams{Rank: cfg.Rank, Scaling: loraScale, A: map[string][]float32{}, B: map[string][]float32{}}
	for _, l := range w.Layers {
		for _, pr := range l.Projections()[:6] { // q, k, v, o, gate, up
			a, b := make([]float32, cfg.Rank*pr.W.In), make([]float32, pr.W.Out*cfg.Rank)
			for i := range a {
				a[i] = float32(rng.NormFloat64() * 0.01)
			}
			for i := range b {
				b[i] = float32(rng.NormFloat64() * 0.01)
			}
			lp.A[pr.Module], lp.B[pr.Module] = a, b
		}
	}
	g, err := model.Build(w, lp, cfg.Batch, cfg.Seq, model.ModeLoss)
	if err != nil {
		return nil, err
	}
	if err := g.BuildGrad(); err != nil {
		return nil, err
	}
	free, _, err := d.MemInfo()
	if err != nil {
		return nil, err
	}
	m, err := NewMachine(d, g, free-(1<<30))
	if err != nil {
		return nil, err
	}
	defer m.Close()
	total, floor := m.PlannedBytes()
	fmt.Fprintf(log, "machine ready in %.1f s: %d nodes, activation plan %.2f GiB (floor %.2f), arena used %.2f GiB\n",
		time.Since(t0).Seconds(), len(m.order), gib(total), gib(floor), gib(m.ar.Peak()))
	N := cfg.Batch * cfg.Seq
	ids, labels := make([]int32, N), make([]int32, N)
	ignore := int(float64(cfg.Seq) * (1 - cfg.LossFrac))
	for i := range ids {
		ids[i] = int32(splitmix64(uint64(i)) % uint64(cfg.Vocab))
		labels[i] = ids[i]
		if i%cfg.Seq < ignore {
			labels[i] = -100
		}
	}
	batch := model.Batch{IDs: ids, Labels: labels}
	h := AdamWHyper{LR: 2e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
	var steps []float64
	ops := map[string][]float64{}
	for i := 0; i < cfg.Warmup+cfg.Steps; i++ {
		m.tm = &timer{d: d}
		m.tm.mark("start")
		if err := m.Run(batch); err != nil {
			return nil, err
		}
		if err := m.Step(h, 1); err != nil {
			return nil, err
		}
		m.tm.mark("optimizer (grad norm + AdamW)")
		ms, err := m.tm.finish()
		if err != nil {
			return nil, err
		}
		loss, err := m.Output(g.Loss)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(log, "step %d: %.1f ms  loss %.4f\n", i, ms, loss[0])
		if i < cfg.Warmup {
			continue
		}
		steps = append(steps, ms)
		for k, v := range m.tm.ops {
			ops[k] = append(ops[k], v)
		}
	}
	r := &BenchResult{GPU: d.Name, OpsMs: map[string]float64{}, StepMs: median(steps),
		Scope: "GPU machine: the model graph (model.Build + gorgonia.Grad) run node by node, then grad clip + AdamW"}
	for k, v := range ops {
		r.OpsMs[k] = median(v)
	}
	r.TokPerSec = float64(N) / (r.StepMs / 1000)
	r.PeakGiB = gib(m.ar.Peak() + m.blas.ws.Bytes)
	return r, nil
}
