//go:build t2mcuda

package gpu

import (
	"fmt"
	"os"
	"strings"
)

// TuneGEMMs gives each weight product of the machine, at each micro-batch size in tokens (rows × length),
// the fastest algorithm cuBLASLt offers with cuBLAS's default bits (train.GEMMTuner, machine.TuneGEMMs):
// losses and gradients are unchanged. It is off unless T2M_GEMM_TUNE=1 (or log, which adds a line per
// product to the summary): on an H200 the real run gained nothing measurable from it at its 8% margin (packed:
// 16,228 tok/s tuned, 16,194 and 16,344 untuned in one call), and it cost 2 s of the start at the packed
// run's 22 sizes (scripts/bench/NOTES.md, twenty-first session).
func (b *TrainBackend) TuneGEMMs(tokens []int) (string, error) {
	env := os.Getenv("T2M_GEMM_TUNE")
	if env != "1" && env != "log" {
		return "", nil
	}
	if b.m == nil {
		return "", fmt.Errorf("cuda backend: tuning before the machine is built (Reserve)")
	}
	if err := b.d.Bind(); err != nil {
		return "", err
	}
	res, err := b.m.TuneGEMMs(tokens)
	if err != nil {
		return "", fmt.Errorf("cuda backend: %w", err)
	}
	switched := 0
	var before, after float64
	var lines strings.Builder
	for _, t := range res {
		if env == "log" {
			fmt.Fprintf(&lines, "\n  M %d N %d K %d (%s): cublasGemmEx %.1f µs, best of %d exact %.1f µs: %s", t.M, t.N,
				t.K, map[bool]string{true: "x·Wᵀ", false: "dy·W"}[t.TransB], t.DefaultUs, t.Candidates, t.BestUs, t.Chosen)
		}
		before += t.DefaultUs
		if t.Switched {
			switched++
			after += t.BestUs
		} else {
			after += t.DefaultUs
		}
	}
	if len(res) == 0 {
		return "", nil
	}
	return fmt.Sprintf("tuned %d weight products at %d micro-batch sizes: %d run a faster cuBLASLt algorithm "+
		"(same results; %.1f → %.1f ms for one of each)%s", len(res), len(tokens), switched, before/1000, after/1000,
		lines.String()), nil
}
