package pipeline

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

func signalOptions(t *testing.T, dataDir, runs string, log *bytes.Buffer) TrainOptions {
	t.Helper()
	return TrainOptions{ModelOptions: ModelOptions{Model: "tiny", Device: "cpu"}, DataDir: dataDir, OutputDir: runs,
		Rank: 2, Epochs: 1, BatchSize: 1, GradAccum: 1, LR: 1e-2, MaxLen: 1024, Seed: 42, Log: log,
		EvalSubset: 1, MaxNewTokens: 2}
}

// --eval-every generates with the registry's generator for the first EvalSubset examples of eval and
// held_out after every N updates (a fresh generator each time, closed after it), logs the four layers'
// rates per split to metrics.jsonl and training_config.json, draws curves.png, and leaves the adapter
// byte for byte that of a run without it.
func TestTrainEvalEvery(t *testing.T) {
	dataDir, runs := writeSplits(t), filepath.Join(t.TempDir(), "runs")
	var log bytes.Buffer
	plain := signalOptions(t, dataDir, runs, &log)
	plain.RunName = "plain"
	if _, err := Train(plain); err != nil {
		t.Fatal(err)
	}
	var gens, closes int
	old := lookupDevice
	lookupDevice = func(name string) (train.Device, bool) {
		d, ok := train.LookupDevice(name)
		inner := d.NewGenerator
		d.NewGenerator = func(w *model.Weights, lp *model.LoRAParams) (train.Generator, error) {
			gens++
			g, err := inner(w, lp)
			return countClose{g, &closes}, err
		}
		return d, ok
	}
	t.Cleanup(func() { lookupDevice = old })
	opts := signalOptions(t, dataDir, runs, &log)
	opts.RunName, opts.EvalEvery = "signal", 1
	res, err := Train(opts)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if gens != 2 || closes != 2 {
		t.Errorf("%d generators opened, %d closed; want one per evaluation (2), each closed", gens, closes)
	}
	read := func(run string) []byte {
		b, err := os.ReadFile(filepath.Join(runs, run, "adapter", lora.WeightsFile))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Equal(read("plain"), read("signal")) {
		t.Error("the adapter of a run with --eval-every differs from the one without")
	}
	sig := res.Record.Signal
	if sig == nil || len(sig.Evaluations) != 2 || sig.Evaluations[1].Step != 2 || sig.EvalSubset != 1 || sig.BestValue != nil {
		t.Fatalf("record's signal: %+v", sig)
	}
	for _, name := range SignalMetrics() {
		if v, ok := sig.Evaluations[0].Rates[name]; !ok || v < 0 || v > 1 {
			t.Errorf("evaluation lacks %s or it is out of [0, 1]: %v", name, sig.Evaluations[0].Rates)
		}
	}
	for _, want := range []string{"generating eval (update 1): 1/1 prompts", "generating held_out (update 2): 1/1 prompts",
		"evaluation after update 2 (", "held_out_overall 0.", "eval loss: 2/2 micro-batches", "curves: "} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	height := func(run string) int {
		f, err := os.Open(filepath.Join(runs, run, CurvesFile))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		img, err := png.Decode(f)
		if err != nil {
			t.Fatalf("%s's curves: %v", run, err)
		}
		return img.Bounds().Dy()
	}
	if s, p := height("signal"), height("plain"); s != 2*p {
		t.Errorf("curves.png is %d pixels high with --eval-every, %d without: want a second panel of rates", s, p)
	}
}

// countClose counts Close calls of a generator.
type countClose struct {
	train.Generator
	n *int
}

func (c countClose) Close() error { *c.n++; return c.Generator.Close() }

// --early-stopping stops a 4-update run after the second evaluation that does not beat the first (the
// tiny model's rates stay the same: a tie is no improvement) and records the best update and value.
func TestTrainEarlyStopping(t *testing.T) {
	dataDir, runs := writeSplits(t), filepath.Join(t.TempDir(), "runs")
	var log bytes.Buffer
	opts := signalOptions(t, dataDir, runs, &log)
	opts.Epochs, opts.EvalEvery, opts.EarlyStopping, opts.EarlyStoppingMetric = 2, 1, 1, "eval_fields"
	res, err := Train(opts)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	sig := res.Record.Signal
	if res.Steps != 2 || sig == nil || !sig.EarlyStopped || sig.BestStep != 1 || sig.BestValue == nil ||
		sig.EarlyStoppingMetric != "eval_fields" || *sig.BestValue != sig.Evaluations[0].Rates["eval_fields"] {
		t.Fatalf("%d updates, signal %+v\n%s", res.Steps, sig, log.String())
	}
	raw, err := os.ReadFile(filepath.Join(res.Dir, TrainConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Signal map[string]any `json:"signal"`
	}
	if err := json.Unmarshal(raw, &rec); err != nil || rec.Signal["best_step"] != 1.0 || rec.Signal["early_stopped"] != true {
		t.Errorf("%s's signal: %v %v", TrainConfigFile, err, rec.Signal)
	}
	if !strings.Contains(log.String(), "early stopping after update 2") {
		t.Errorf("log:\n%s", log.String())
	}
}

// Bad evaluation settings are refused naming the flag and what it accepts, before anything is written.
func TestTrainSignalBadOptions(t *testing.T) {
	dataDir := writeSplits(t)
	for _, tc := range []struct {
		edit func(*TrainOptions)
		want string
	}{
		{func(o *TrainOptions) { o.EvalEvery = -1 }, "--eval-every -1 must be ≥ 0"},
		{func(o *TrainOptions) { o.EvalSubset = -3 }, "--eval-subset -3 must be ≥ 0"},
		{func(o *TrainOptions) { o.EarlyStopping = -1 }, "--early-stopping -1 must be ≥ 0"},
		{func(o *TrainOptions) { o.EvalEvery = 0 }, "--early-stopping 2 needs --eval-every"},
		{func(o *TrainOptions) { o.EvalSubset = 0 }, "--eval-subset 0 must be ≥ 1 with --eval-every"},
		{func(o *TrainOptions) { o.EarlyStoppingMetric = "overall" },
			`--early-stopping-metric "overall" is not one of eval_syntax, eval_operators, eval_fields, eval_overall, held_out_syntax, held_out_operators, held_out_fields, held_out_overall`},
		{func(o *TrainOptions) { o.DataDir = t.TempDir() }, "--eval-every: eval split"},
	} {
		runs := filepath.Join(t.TempDir(), "runs")
		o := signalOptions(t, dataDir, runs, &bytes.Buffer{})
		o.EvalEvery, o.EarlyStopping = 1, 2
		tc.edit(&o)
		if _, err := Train(o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err %v, want %q", err, tc.want)
		}
		if _, err := os.Stat(runs); !os.IsNotExist(err) {
			t.Errorf("%q: %s was created", tc.want, runs)
		}
	}
	if !slices.Contains(SignalMetrics(), DefaultEarlyStoppingMetric) {
		t.Errorf("the default metric %s is not accepted", DefaultEarlyStoppingMetric)
	}
}

// The loss axis is labelled with the decimals its tick spacing needs.
func TestPreciseTicks(t *testing.T) {
	var labels []string
	for _, tk := range (preciseTicks{}).Ticks(12.21, 12.30) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if len(labels) < 2 || labels[0] == labels[1] || !strings.Contains(labels[0], "12.2") {
		t.Errorf("labels %v: want distinct labels like 12.22, 12.24", labels)
	}
}
