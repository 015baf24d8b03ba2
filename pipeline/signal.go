package pipeline

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/eval"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

// Defaults of the evaluation during training (t2m train --eval-every).
const (
	DefaultEvalSubset          = 32                 // --eval-subset: the first 32 examples of eval and of held_out
	DefaultEarlyStoppingMetric = "held_out_overall" // --early-stopping-metric
)

// signalLayers are the layers whose pass rates an evaluation during training logs, with the rate of each
// in a report.
var signalLayers = []struct {
	name string
	rate func(*eval.Report) float64
}{
	{"syntax", func(r *eval.Report) float64 { return r.SyntaxPassRate }},
	{"operators", func(r *eval.Report) float64 { return r.OperatorPassRate }},
	{"fields", func(r *eval.Report) float64 { return r.FieldPassRate }},
	{"overall", func(r *eval.Report) float64 { return r.OverallPassRate }},
}

// SignalMetrics are the rates an evaluation during training returns and --early-stopping-metric accepts:
// <split>_<layer> for the splits of EvalSplits and the layers syntax, operators, fields, overall.
func SignalMetrics() []string {
	var names []string
	for _, split := range EvalSplits {
		for _, l := range signalLayers {
			names = append(names, split+"_"+l.name)
		}
	}
	return names
}

// validateSignal checks the evaluation-during-training options, each error naming the flag and what it
// accepts.
func (o TrainOptions) validateSignal() error {
	for _, c := range []struct {
		flag string
		v    int
		note string
	}{{"--eval-every", o.EvalEvery, "updates between evaluations; 0: none"},
		{"--eval-subset", o.EvalSubset, "examples of each split evaluated"},
		{"--early-stopping", o.EarlyStopping, "evaluations without improvement before stopping; 0: never stop early"},
		{"--max-new-tokens", o.MaxNewTokens, "tokens generated per example at most"}} {
		if c.v < 0 {
			return fmt.Errorf("train: %s %d must be ≥ 0 (%s)", c.flag, c.v, c.note)
		}
	}
	if o.EarlyStoppingMetric != "" && !slices.Contains(SignalMetrics(), o.EarlyStoppingMetric) {
		return fmt.Errorf("train: --early-stopping-metric %q is not one of %s", o.EarlyStoppingMetric, strings.Join(SignalMetrics(), ", "))
	}
	if o.EvalEvery == 0 {
		if o.EarlyStopping > 0 {
			return fmt.Errorf("train: --early-stopping %d needs --eval-every N > 0: it counts those evaluations", o.EarlyStopping)
		}
		return nil
	}
	switch {
	case o.EvalSubset == 0:
		return fmt.Errorf("train: --eval-subset 0 must be ≥ 1 with --eval-every (the first N examples of eval and held_out; default %d)", DefaultEvalSubset)
	case o.MaxNewTokens == 0:
		return fmt.Errorf("train: --max-new-tokens 0 must be ≥ 1 with --eval-every (default %d)", model.DefaultMaxNewTokens)
	}
	return nil
}

// earlyStoppingMetric is the metric early stopping follows ("": the default).
func (o TrainOptions) earlyStoppingMetric() string {
	if o.EarlyStoppingMetric == "" {
		return DefaultEarlyStoppingMetric
	}
	return o.EarlyStoppingMetric
}

// signalSet is the fixed subset an evaluation during training generates for: the first EvalSubset
// examples (within --limit) of each of EvalSplits.
type signalSet struct {
	splits   []string
	examples [][]data.Example
}

// readSignalSet reads the subsets (nil without EvalEvery), before anything of the run is written.
func readSignalSet(opts TrainOptions) (*signalSet, error) {
	if opts.EvalEvery == 0 {
		return nil, nil
	}
	n := opts.EvalSubset
	if opts.Limit > 0 {
		n = min(n, opts.Limit)
	}
	s := &signalSet{}
	for _, split := range EvalSplits {
		exs, _, err := ReadSplit(opts.DataDir, split, n)
		if err != nil {
			return nil, fmt.Errorf("--eval-every: %w", err)
		}
		s.splits, s.examples = append(s.splits, split), append(s.examples, exs)
	}
	return s, nil
}

// evaluator is train.EvaluateFunc for a run: a generator of the model's device with the current LoRA
// values, opened for each evaluation and closed after it (so a GPU gives its memory back to training),
// greedy decoding as Evaluate does, and the four layers' rates of each split.
func (s *signalSet) evaluator(m *Model, opts TrainOptions, log io.Writer) (train.EvaluateFunc, error) {
	dev, ok := lookupDevice(m.Device)
	if !ok || dev.NewGenerator == nil {
		return nil, fmt.Errorf("--eval-every: no %s generator in this binary", m.Device)
	}
	batch := DefaultGenerationBatch
	if m.Device != "cpu" {
		batch = DefaultGPUGenerationBatch
	}
	return func(step int, lp *model.LoRAParams) (map[string]float64, error) {
		gen, err := dev.NewGenerator(m.Weights, lp)
		if err != nil {
			return nil, err
		}
		g := generation{log: log, gen: gen, tok: m.Tok, maxLen: opts.MaxLen, maxNew: opts.MaxNewTokens, batch: batch,
			stops: stopIDs(m.Tok)}
		rates, err := s.rates(&g, step)
		if cerr := gen.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("closing the generator: %w", cerr)
		}
		return rates, err
	}, nil
}

// rates generates for each split's subset with g and scores the outputs on the four layers:
// <split>_<layer> → pass rate.
func (s *signalSet) rates(g *generation, step int) (map[string]float64, error) {
	rates := map[string]float64{}
	for i, split := range s.splits {
		exs := s.examples[i]
		preds, err := g.split(exs, fmt.Sprintf("%s (update %d)", split, step))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", split, err)
		}
		_, rep, err := eval.Score(exs, preds, nil)
		if err != nil {
			return nil, fmt.Errorf("scoring %s: %w", split, err)
		}
		for _, l := range signalLayers {
			rates[split+"_"+l.name] = l.rate(rep)
		}
	}
	return rates, nil
}

// SignalRecord is TrainConfigFile's "signal": the evaluation-during-training settings, early stopping's
// result (the best update and value, whether the run stopped early), and every evaluation's rates.
type SignalRecord struct {
	EvalEvery           int      `json:"eval_every"`
	EvalSubset          int      `json:"eval_subset"`
	MaxNewTokens        int      `json:"max_new_tokens"`
	EarlyStopping       int      `json:"early_stopping"`
	EarlyStoppingMetric string   `json:"early_stopping_metric,omitempty"`
	BestStep            int      `json:"best_step,omitempty"`
	BestValue           *float64 `json:"best_value,omitempty"`
	EarlyStopped        bool     `json:"early_stopped"`
	// Evaluations are metrics.jsonl's evaluation lines (of this call and, after --resume, the earlier ones).
	Evaluations []SignalEvaluation `json:"evaluations"`
}

// SignalEvaluation is one evaluation during training: the update after which it ran and its rates.
type SignalEvaluation struct {
	Step  int                `json:"step"`
	Rates map[string]float64 `json:"rates"`
}

// signalRecord is the record of a run with EvalEvery (nil without), its evaluations read from metrics.
func signalRecord(opts TrainOptions, res *train.Result, metrics []train.Metric) *SignalRecord {
	if opts.EvalEvery == 0 {
		return nil
	}
	rec := &SignalRecord{EvalEvery: opts.EvalEvery, EvalSubset: opts.EvalSubset, MaxNewTokens: opts.MaxNewTokens,
		EarlyStopping: opts.EarlyStopping, Evaluations: []SignalEvaluation{}}
	if opts.EarlyStopping > 0 {
		es := res.EarlyStop
		rec.EarlyStoppingMetric, rec.BestStep, rec.EarlyStopped = es.Metric, es.BestStep, es.Stopped
		if es.BestStep > 0 {
			best := es.Best
			rec.BestValue = &best
		}
	}
	for _, m := range metrics {
		if m.Rates != nil {
			rec.Evaluations = append(rec.Evaluations, SignalEvaluation{Step: m.Step, Rates: m.Rates})
		}
	}
	return rec
}
