package train

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Metric is one line of metrics.jsonl: an update (Loss, LR, GradNorm, TokensPS), an epoch's eval loss
// (EvalLoss) or an evaluation's rates (Rates, Run.EvalEvery).
type Metric struct {
	Step     int      `json:"step"`
	Epoch    float64  `json:"epoch"`
	Loss     *float64 `json:"loss,omitempty"`
	LR       *float64 `json:"learning_rate,omitempty"`
	GradNorm *float64 `json:"grad_norm,omitempty"`
	TokensPS *float64 `json:"tokens_per_second,omitempty"`
	// AllReduceS is the time the update's gradient all-reduce took (data-parallel runs only), waiting for
	// the slowest rank included.
	AllReduceS *float64 `json:"allreduce_s,omitempty"`
	// MicroBatches are the update's micro-batches as this process ran them, in order (a data-parallel
	// rank lists its own): their padded shape, real tokens and wall time. On a GPU the time grows in steps
	// of the GEMMs' tiles rather than with the tokens (scripts/bench/NOTES.md has an H200's steps).
	MicroBatches []MicroBatchTime   `json:"micro_batches,omitempty"`
	EvalLoss     *float64           `json:"eval_loss,omitempty"`
	Rates        map[string]float64 `json:"rates,omitempty"`
	Elapsed      float64            `json:"elapsed_s"`
	Timestamp    string             `json:"time"`
}

// MicroBatchTime is one micro-batch of an update: Rows sequences padded to Seq tokens, of which Tokens are
// real, run (forward, loss and backward, to the loss on the host) in MS milliseconds.
type MicroBatchTime struct {
	Rows   int     `json:"rows"`
	Seq    int     `json:"seq"`
	Tokens int     `json:"tokens"`
	MS     float64 `json:"ms"`
	// LaunchMS and WaitMS split the backend's part of MS on a HostTimer backend (the GPU machine): the host
	// launching the device's work, then waiting for the device to finish it.
	LaunchMS float64 `json:"launch_ms,omitempty"`
	WaitMS   float64 `json:"wait_ms,omitempty"`
}

func f64(v float64) *float64 { return &v }

// ReadMetrics reads a run's metrics.jsonl, one Metric per line in order.
func ReadMetrics(path string) ([]Metric, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Metric
	for i, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if line == "" {
			continue
		}
		var m Metric
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// truncateMetrics keeps the lines of metrics.jsonl up to update step (a resumed run rewrites the rest).
func truncateMetrics(path string, step int) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	var keep strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		var m Metric
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Step <= step {
			keep.Write(sc.Bytes())
			keep.WriteByte('\n')
		}
	}
	return os.WriteFile(path, []byte(keep.String()), 0o644)
}
