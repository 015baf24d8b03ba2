package gpu

import (
	"fmt"
	"io"
	"sort"
)

// BenchConfig is the shape of the training benchmark: a Qwen2-shaped model with random NF4 weights made on
// the device, LoRA on q,k,v,o,gate,up, loss on the last LossFrac of each sequence.
type BenchConfig struct {
	Hidden, Intermediate, Layers, Heads, KVHeads, HeadDim, Vocab int
	Batch, Seq, Rank                                             int
	LossFrac                                                     float64
	Warmup, Steps                                                int
	Scope                                                        string // "full" (a whole step) or "gemm"
	Overlap                                                      bool   // dequantize the next weight during the current GEMM
}

// Qwen7BBench is the benchmark of issue 4: Qwen2.5-Coder-7B's shape, B=4, T=512, r=8, loss on the last 30%.
func Qwen7BBench() BenchConfig {
	return BenchConfig{Hidden: 3584, Intermediate: 18944, Layers: 28, Heads: 28, KVHeads: 4, HeadDim: 128,
		Vocab: 152064, Batch: 4, Seq: 512, Rank: 8, LossFrac: 0.3, Warmup: 2, Steps: 5, Scope: "full"}
}

// BenchResult is what the benchmark measured.
type BenchResult struct {
	GPU       string
	Scope     string // what one "step" covered (e.g. "GEMM+dequant pieces only")
	StepMs    float64
	TokPerSec float64
	PeakGiB   float64
	TFLOPs    float64            // achieved on the step's counted FLOPs
	OpsMs     map[string]float64 // per-op median time inside one step
}

// Print writes r as a small table.
func (r *BenchResult) Print(w io.Writer) {
	fmt.Fprintf(w, "gpu: %s\nscope: %s\nstep: %.2f ms  tokens/s: %.0f  peak: %.2f GiB  TFLOP/s: %.0f\n",
		r.GPU, r.Scope, r.StepMs, r.TokPerSec, r.PeakGiB, r.TFLOPs)
	names := make([]string, 0, len(r.OpsMs))
	for n := range r.OpsMs {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return r.OpsMs[names[i]] > r.OpsMs[names[j]] })
	for _, n := range names {
		fmt.Fprintf(w, "  %-34s %9.2f ms  %5.1f%%\n", n, r.OpsMs[n], 100*r.OpsMs[n]/r.StepMs)
	}
}

// median of xs (xs is reordered).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	return xs[len(xs)/2]
}
