package pipeline

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/eval"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

// DefaultGenerationBatch is how many prompts Evaluate decodes together on the CPU (the original's
// batch_size=8); DefaultGPUGenerationBatch on a GPU, where a decode step reads every weight once however
// many rows it has. Measured on an H200 (all 594 published examples, 64 new tokens, 7B layout, load
// included): 25.4 / 21.5 / 18.7 s at 32 / 64 / 96 with NF4 kept (8.1 / 8.9 / 9.9 GB of GPU memory), 22.6 /
// 18.0 / 17.6 / 16.4 s at 32 / 64 / 96 / 128 with bf16 copies (17.0–19.9 GB); 96 keeps NF4 under 10 GiB.
const (
	DefaultGenerationBatch    = 8
	DefaultGPUGenerationBatch = 96
)

// EvalSplits are the splits Evaluate generates for and scores, in order.
var EvalSplits = []string{"eval", "held_out"}

// EvalOptions configure Evaluate. The command line's defaults: MaxLen data.DefaultMaxLen, MaxNewTokens
// model.DefaultMaxNewTokens, HeldOutCollections eval.DefaultHeldOutCollections.
type EvalOptions struct {
	ModelOptions
	// Adapter is the PEFT adapter folder to apply, not merged (t2m eval); "" evaluates the base model
	// zero-shot (t2m baseline).
	Adapter string
	// DataDir holds eval.jsonl and held_out.jsonl.
	DataDir string
	// OutputDir receives the run folder OutputDir/RunName.
	OutputDir string
	// RunName names the run folder; "" gives <model>_baseline for the base model, the adapter's run folder
	// for an adapter in <run>/adapter, and <model>_r<rank> otherwise.
	RunName string
	// Limit keeps the first Limit examples of each split (0: all).
	Limit int
	// MaxLen cuts longer prompts to their first MaxLen tokens (the original's truncation); positive.
	MaxLen int
	// MaxNewTokens stops each generation after this many tokens; positive.
	MaxNewTokens int
	// HeldOutCollections are counted as held-out schemas by the generalization layer (nil: none).
	HeldOutCollections []string
	// Batch is how many prompts are decoded together (0: DefaultGenerationBatch, DefaultGPUGenerationBatch on
	// a GPU).
	Batch int
	// Overwrite replaces the reports of a run folder that already holds some; without it such a folder is
	// refused (before the model is loaded when the run name is known from the options).
	Overwrite bool
	// CommandLine is recorded in each report's provenance (nil: os.Args).
	CommandLine []string
	// WatchInterrupts, when set, is called once, after loading and right before the first generation.
	// Closing its stop channel makes the run stop before its next batch and return an *EvalInterrupted
	// error, having written no file of the unfinished split; Evaluate calls done when the run ends. t2m
	// connects it to SIGINT and SIGTERM.
	WatchInterrupts func() (stop <-chan struct{}, done func())
	// Log receives progress lines (nil: discarded).
	Log io.Writer
	// OnSplit, when set, is called after each split's predictions and report are written, before the
	// next split is generated (t2m prints the report there).
	OnSplit func(SplitResult)
	// Group, with more than one rank, makes this Evaluate one rank of a sharded evaluation (one process per
	// GPU, see train.Collective): each rank decodes every Size-th generation batch, the outputs are gathered
	// on every rank, and rank 0 alone scores, writes and calls OnSplit; the other ranks return a result
	// without Splits. The outputs are those of one device: the batches are the same.
	Group train.Collective
}

// SplitResult is one evaluated split.
type SplitResult struct {
	RunName         string
	Split           string        // "eval" or "held_out"
	Results         []eval.Result // per example, in the split's order
	Report          *eval.Report
	PredictionsFile string // Dir/<split>_predictions.jsonl
	ReportFile      string // Dir/<split>_report.json
}

// EvalInterrupted is Evaluate's error when WatchInterrupts' stop channel was closed: generation stopped
// before a batch of Split, no file of that split (nor of the splits after it) was written, so Dir holds,
// for each of them, the previous complete predictions and report or none. Written lists the splits whose
// new files were written before the stop. It wraps train.ErrInterrupted.
type EvalInterrupted struct {
	Dir     string
	Split   string
	Written []string
}

// Error says what was and was not written.
func (e *EvalInterrupted) Error() string {
	msg := fmt.Sprintf("interrupted while generating %s: no %s report or predictions were written to %s (the previous ones, if any, are unchanged)",
		e.Split, e.Split, e.Dir)
	if len(e.Written) > 0 {
		msg += fmt.Sprintf("; the new %v files were written before the interrupt", e.Written)
	}
	return msg
}

// Unwrap gives train.ErrInterrupted.
func (e *EvalInterrupted) Unwrap() error { return train.ErrInterrupted }

// EvalResult is a finished evaluation.
type EvalResult struct {
	RunName string
	Dir     string // OutputDir/RunName
	Device  string
	Splits  []SplitResult // in EvalSplits order
}

// Evaluate generates greedily (up to MaxNewTokens, stopping at <|im_end|> or <|endoftext|>) for every
// example of DataDir's eval and held-out splits with the model (and adapter), scores the outputs on the
// four layers like `t2m score`, and writes OutputDir/<run>/<split>_predictions.jsonl and _report.json
// atomically, each report with its provenance (command, model, adapter, tokenizer, data, settings,
// timings, version, GPU). A run folder that already holds reports is refused unless Overwrite. Its errors
// start with "baseline:" or "eval:" (with an adapter); an interrupt gives an *EvalInterrupted.
func Evaluate(opts EvalOptions) (*EvalResult, error) {
	cmd := "baseline"
	if opts.Adapter != "" {
		cmd = "eval"
	}
	res, err := evaluate(cmd, opts)
	var stopped *EvalInterrupted
	if errors.As(err, &stopped) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return res, nil
}

func evaluate(cmd string, opts EvalOptions) (*EvalResult, error) {
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	if err := CheckRunName(opts.RunName); err != nil {
		return nil, err
	}
	if opts.MaxNewTokens <= 0 || opts.MaxLen <= 0 {
		return nil, fmt.Errorf("--max-new-tokens %d and --max-len %d must be positive", opts.MaxNewTokens, opts.MaxLen)
	}
	if opts.Limit < 0 {
		return nil, fmt.Errorf("--limit %d must be ≥ 0 (0: every example)", opts.Limit)
	}
	started := time.Now()
	if name := quickRunName(cmd, opts); name != "" && !opts.Overwrite {
		// The run name is known without the model: refuse before loading it (checked again under the lock).
		if err := refuseOverwrite(filepath.Join(opts.OutputDir, name)); err != nil {
			return nil, err
		}
	}
	examples := map[string][]data.Example{}
	paths := map[string]string{}
	var files []string
	for _, s := range EvalSplits {
		exs, path, err := ReadSplit(opts.DataDir, s, opts.Limit)
		if err != nil {
			return nil, err
		}
		examples[s], paths[s] = exs, path
		files = append(files, path)
	}
	in, err := hashInputs(opts.CommandLine, opts.ModelOptions, opts.Adapter, files...)
	if err != nil {
		return nil, err
	}
	m, err := LoadModel(withLog(opts.ModelOptions, log), cmd)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "model %s loaded (%s)\n", m.Name, m.Loaded)
	var lp *model.LoRAParams
	if opts.Adapter != "" {
		if lp, err = model.LoadAdapter(opts.Adapter, m.Weights.Config); err != nil {
			return nil, err
		}
	}
	runName, err := evalRunName(cmd, opts.RunName, opts.Adapter, m.Name, lp)
	if err != nil {
		return nil, err
	}
	rank, _ := train.RankOf(opts.Group)
	lead := rank == 0
	if lead { // the other ranks of a sharded evaluation write nothing
		lock, err := LockRun(filepath.Join(opts.OutputDir, runName), "t2m "+cmd)
		if err != nil {
			return nil, err
		}
		defer lock.Release()
	}
	if !opts.Overwrite {
		if err := refuseOverwrite(filepath.Join(opts.OutputDir, runName)); err != nil {
			return nil, err
		}
	}
	dev, ok := lookupDevice(m.Device)
	if !ok || dev.NewGenerator == nil {
		return nil, fmt.Errorf("no %s generator in this binary", m.Device)
	}
	ready := time.Now()
	gen, err := dev.NewGenerator(m.Weights, lp)
	if err != nil {
		return nil, err
	}
	defer gen.Close()
	if d := gen.Describe(); d != "" {
		fmt.Fprintf(log, "generating on %s (ready in %s)\n", d, time.Since(ready).Round(100*time.Millisecond))
	}
	gpu := gpuName(m.Device)
	loaded := time.Since(started)
	stops := stopIDs(m.Tok)
	res := &EvalResult{RunName: runName, Dir: filepath.Join(opts.OutputDir, runName), Device: m.Device}
	adapterNote := ""
	if opts.Adapter != "" {
		adapterNote = ", adapter " + opts.Adapter
	}
	fmt.Fprintf(log, "%s %s: model %s (%s)%s on %s, greedy, up to %d new tokens\n", cmd, runName, m.Name, m.Quant,
		adapterNote, m.Device, opts.MaxNewTokens)
	batch := opts.Batch
	if batch <= 0 {
		batch = DefaultGenerationBatch
		if m.Device != "cpu" {
			batch = DefaultGPUGenerationBatch
		}
	}
	g := generation{log: log, gen: gen, tok: m.Tok, maxLen: opts.MaxLen, maxNew: opts.MaxNewTokens,
		batch: batch, stops: stops, group: opts.Group}
	settings := eval.Settings{Device: m.Device, Quantization: m.Quant, MaxLen: opts.MaxLen, MaxNewTokens: opts.MaxNewTokens,
		Limit: opts.Limit, HeldOutCollections: opts.HeldOutCollections, GenerationBatch: batch, Decoding: "greedy"}
	if opts.WatchInterrupts != nil {
		stop, done := opts.WatchInterrupts()
		defer done()
		g.stop = stop
	}
	var written []string
	for _, split := range EvalSplits {
		exs := examples[split]
		genStart := time.Now()
		preds, err := g.split(exs, split)
		if errors.Is(err, errGenerationStopped) {
			return nil, &EvalInterrupted{Dir: res.Dir, Split: split, Written: written}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", split, err)
		}
		if !lead {
			continue
		}
		scoreStart := time.Now()
		results, rep, err := eval.Score(exs, preds, opts.HeldOutCollections)
		if err != nil {
			return nil, fmt.Errorf("scoring %s: %w", split, err)
		}
		rep.RunName, rep.Split, rep.SplitFile, rep.PredictionsFile = runName, split, paths[split], "(generated by t2m "+cmd+")"
		rep.Provenance = in.provenance(settings, eval.Timings{LoadSeconds: loaded.Seconds(),
			GenerationSeconds: scoreStart.Sub(genStart).Seconds(), ScoringSeconds: time.Since(scoreStart).Seconds(),
			WallSeconds: time.Since(started).Seconds()}, gpu)
		if err := eval.WriteReports(res.Dir, split, results, rep); err != nil {
			return nil, err
		}
		written = append(written, split)
		sr := SplitResult{RunName: runName, Split: split, Results: results, Report: rep,
			PredictionsFile: filepath.Join(res.Dir, split+"_predictions.jsonl"),
			ReportFile:      filepath.Join(res.Dir, split+"_report.json")}
		res.Splits = append(res.Splits, sr)
		if opts.OnSplit != nil {
			opts.OnSplit(sr)
		}
	}
	return res, nil
}

// quickRunName is the run name evalRunName will give, when it is known without loading the model or
// the adapter: given, <model>_baseline, or the folder above an adapter in <run>/adapter; "" otherwise.
func quickRunName(cmd string, opts EvalOptions) string {
	if opts.RunName != "" {
		return opts.RunName
	}
	name := opts.Model
	if st, err := os.Stat(filepath.Join(opts.Model, "config.json")); err == nil && !st.IsDir() {
		name = filepath.Base(filepath.Clean(opts.Model)) // LoadModel's Name for a directory
	}
	switch {
	case cmd == "baseline":
		name += "_baseline"
	case filepath.Base(filepath.Clean(opts.Adapter)) == "adapter":
		name = filepath.Base(filepath.Dir(filepath.Clean(opts.Adapter)))
	default:
		return ""
	}
	if CheckRunName(name) != nil || name == "." || name == "" {
		return ""
	}
	return name
}

// evalRunName is the run name given, or the default: <model>_baseline for the base model; for an adapter
// the run folder above an "adapter" folder, else <model>_r<rank>.
func evalRunName(cmd, given, adapterDir, modelName string, lp *model.LoRAParams) (string, error) {
	if given != "" {
		return given, nil
	}
	var runName string
	switch {
	case cmd == "baseline":
		runName = modelName + "_baseline"
	case filepath.Base(filepath.Clean(adapterDir)) == "adapter":
		runName = filepath.Base(filepath.Dir(filepath.Clean(adapterDir)))
	default:
		runName = fmt.Sprintf("%s_r%d", modelName, lp.Rank)
	}
	if err := CheckRunName(runName); err != nil || runName == "." || runName == "" {
		return "", fmt.Errorf("cannot derive a run name from --adapter %s: pass --run-name", adapterDir)
	}
	return runName, nil
}
