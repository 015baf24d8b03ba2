package train

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/t2m/t2m/model"
)

// EvaluateFunc scores the adapter as it is after update step (lora holds the current values; it must not
// change them) and returns named rates, higher being better ("held_out_overall": 0.75, ...). Run calls it
// every EvalEvery updates; the pipeline that provides it generates and scores, so that this package stays
// free of both.
type EvaluateFunc func(step int, lora *model.LoRAParams) (map[string]float64, error)

// EarlyStopState is where early stopping stands, saved in the checkpoint (State.EarlyStop) so that a
// resumed run continues it: the settings it follows, the best value of the metric and the update it was
// reached at (the adapter folder holds that update's adapter), the evaluations since without improvement,
// and whether the run has stopped.
type EarlyStopState struct {
	EvalEvery int     `json:"eval_every"`
	Patience  int     `json:"patience"`
	Metric    string  `json:"metric"`
	Best      float64 `json:"best"`
	BestStep  int     `json:"best_step"` // 0: no evaluation yet
	Bad       int     `json:"evaluations_without_improvement"`
	Stopped   bool    `json:"stopped"`
}

// earlyStopping reports whether the run stops early and follows a metric.
func (r *Run) earlyStopping() bool {
	return r.EarlyStopping > 0 && r.EvalEvery > 0 && r.Evaluate != nil
}

// checkSignal checks the evaluation settings: counts ≥ 0, early stopping only with evaluations and a
// metric to follow.
func (r *Run) checkSignal() error {
	switch {
	case r.EvalEvery < 0:
		return fmt.Errorf("--eval-every %d must be ≥ 0 (updates between evaluations; 0: none)", r.EvalEvery)
	case r.EarlyStopping < 0:
		return fmt.Errorf("--early-stopping %d must be ≥ 0 (evaluations without improvement before stopping; 0: never stop early)", r.EarlyStopping)
	case r.EvalEvery > 0 && r.Evaluate == nil:
		return fmt.Errorf("--eval-every %d needs an evaluation (Run.Evaluate is nil)", r.EvalEvery)
	case r.EarlyStopping > 0 && r.EvalEvery == 0:
		return fmt.Errorf("--early-stopping %d needs --eval-every N > 0: it counts those evaluations", r.EarlyStopping)
	case r.EarlyStopping > 0 && r.EarlyStoppingMetric == "":
		return fmt.Errorf("--early-stopping %d needs --early-stopping-metric", r.EarlyStopping)
	}
	return nil
}

// checkEarlyStopResume refuses to continue a checkpoint's early stopping with other settings (now).
func (st State) checkEarlyStopResume(dir string, now EarlyStopState) error {
	es := st.EarlyStop
	if es.Patience != now.Patience || es.Metric != now.Metric || (now.Patience > 0 && es.EvalEvery != now.EvalEvery) {
		return fmt.Errorf("%s was written with --eval-every %d --early-stopping %d --early-stopping-metric %q, now %d, %d, %q: "+
			"resume with the same early stopping, or start a new --run-name", dir, es.EvalEvery, es.Patience, es.Metric,
			now.EvalEvery, now.Patience, now.Metric)
	}
	return nil
}

// damage says what is wrong with an early-stopping state saved after update step ("": nothing).
func (es EarlyStopState) damage(step int) string {
	switch {
	case es.EvalEvery < 0 || es.Patience < 0:
		return fmt.Sprintf("early stopping's eval_every %d and patience %d must be ≥ 0", es.EvalEvery, es.Patience)
	case es.Bad < 0 || es.Bad > es.Patience:
		return fmt.Sprintf("%d evaluations without improvement is outside [0, patience %d]", es.Bad, es.Patience)
	case es.BestStep < 0 || es.BestStep > step:
		return fmt.Sprintf("early stopping's best update %d is outside [0, %d]", es.BestStep, step)
	case math.IsNaN(es.Best) || math.IsInf(es.Best, 0):
		return fmt.Sprintf("early stopping's best %s %v is not a finite number", es.Metric, es.Best)
	case es.Stopped && es.BestStep == 0:
		return "early stopping stopped the run before any evaluation"
	}
	return ""
}

// evaluate runs the evaluation due after update st.Step, if any: it calls Evaluate, writes the rates as
// a metrics.jsonl line and, with early stopping, saves the adapter when the metric improved (strictly: a
// tie is no improvement) and counts the evaluations without improvement. It reports whether the run
// must stop now.
func (r *Run) evaluate(st *State, epoch float64, adapterDir string, writeMetric func(Metric) error) (bool, error) {
	if r.EvalEvery <= 0 || r.Evaluate == nil || st.Step%r.EvalEvery != 0 {
		return false, nil
	}
	t0 := time.Now()
	if err := r.syncHost(); err != nil {
		return false, fmt.Errorf("train: evaluation after update %d: %w", st.Step, err)
	}
	rates, err := r.Evaluate(st.Step, r.Params.LoRA)
	if err != nil {
		return false, fmt.Errorf("train: evaluation after update %d: %w", st.Step, err)
	}
	if err := writeMetric(Metric{Step: st.Step, Epoch: epoch, Rates: rates}); err != nil {
		return false, err
	}
	took := time.Since(t0).Round(time.Millisecond)
	fmt.Fprintf(r.Log, "evaluation after update %d (%s): %s\n", st.Step, took, formatRates(rates))
	if !r.earlyStopping() {
		return false, nil
	}
	v, ok := rates[r.EarlyStoppingMetric]
	if !ok {
		return false, fmt.Errorf("train: evaluation after update %d has no %q (it has %s)", st.Step, r.EarlyStoppingMetric, strings.Join(rateNames(rates), ", "))
	}
	es := &st.EarlyStop
	if es.BestStep == 0 || v > es.Best {
		es.Best, es.BestStep, es.Bad = v, st.Step, 0
		if err := r.saveAdapter(adapterDir); err != nil {
			return false, fmt.Errorf("train: %w", err)
		}
		fmt.Fprintf(r.Log, "early stopping: %s %.4f, best so far: adapter saved\n", r.EarlyStoppingMetric, v)
		return false, nil
	}
	es.Bad++
	fmt.Fprintf(r.Log, "early stopping: %s %.4f, no improvement on %.4f (update %d): %d of --early-stopping %d\n",
		r.EarlyStoppingMetric, v, es.Best, es.BestStep, es.Bad, es.Patience)
	if es.Bad >= es.Patience {
		es.Stopped = true
		return true, nil
	}
	return false, nil
}

// rateNames are the names of rates, sorted.
func rateNames(rates map[string]float64) []string {
	names := make([]string, 0, len(rates))
	for k := range rates {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// formatRates is "a 0.5000, b 0.2500" in name order.
func formatRates(rates map[string]float64) string {
	var parts []string
	for _, k := range rateNames(rates) {
		parts = append(parts, fmt.Sprintf("%s %.4f", k, rates[k]))
	}
	return strings.Join(parts, ", ")
}
