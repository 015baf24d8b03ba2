package pipeline

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/eval"
	"github.com/t2m/t2m/model"
)

// DefaultGenerationBatch is how many prompts Evaluate decodes together on the CPU (the original's
// batch_size=8); DefaultGPUGenerationBatch on a GPU, where a decode step of 32 rows costs little more than
// one of 8 (the weights are read once per step either way).
const (
	DefaultGenerationBatch    = 8
	DefaultGPUGenerationBatch = 32
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
	// Log receives progress lines (nil: discarded).
	Log io.Writer
	// OnSplit, when set, is called after each split's predictions and report are written, before the
	// next split is generated (t2m prints the report there).
	OnSplit func(SplitResult)
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
// atomically. Its errors start with "baseline:" or "eval:" (with an adapter).
func Evaluate(opts EvalOptions) (*EvalResult, error) {
	cmd := "baseline"
	if opts.Adapter != "" {
		cmd = "eval"
	}
	res, err := evaluate(cmd, opts)
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
	examples := map[string][]data.Example{}
	paths := map[string]string{}
	for _, s := range EvalSplits {
		exs, path, err := ReadSplit(opts.DataDir, s, opts.Limit)
		if err != nil {
			return nil, err
		}
		examples[s], paths[s] = exs, path
	}
	m, err := LoadModel(opts.ModelOptions, cmd)
	if err != nil {
		return nil, err
	}
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
	lock, err := LockRun(filepath.Join(opts.OutputDir, runName), "t2m "+cmd)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	dev, ok := lookupDevice(m.Device)
	if !ok || dev.NewGenerator == nil {
		return nil, fmt.Errorf("no %s generator in this binary", m.Device)
	}
	gen, err := dev.NewGenerator(m.Weights, lp)
	if err != nil {
		return nil, err
	}
	defer gen.Close()
	if d := gen.Describe(); d != "" {
		fmt.Fprintf(log, "generating on %s\n", d)
	}
	stops := stopIDs(m.Tok)
	res := &EvalResult{RunName: runName, Dir: filepath.Join(opts.OutputDir, runName), Device: m.Device}
	adapterNote := ""
	if opts.Adapter != "" {
		adapterNote = ", adapter " + opts.Adapter
	}
	fmt.Fprintf(log, "%s %s: model %s (%s)%s on %s, greedy, up to %d new tokens\n", cmd, runName, m.Name, m.Quant,
		adapterNote, m.Device, opts.MaxNewTokens)
	batch := opts.Batch
	if batch <= 0 && m.Device != "cpu" {
		batch = DefaultGPUGenerationBatch
	}
	g := generation{log: log, gen: gen, tok: m.Tok, maxLen: opts.MaxLen, maxNew: opts.MaxNewTokens,
		batch: batch, stops: stops}
	for _, split := range EvalSplits {
		exs := examples[split]
		preds, err := g.split(exs, split)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", split, err)
		}
		results, rep, err := eval.Score(exs, preds, opts.HeldOutCollections)
		if err != nil {
			return nil, fmt.Errorf("scoring %s: %w", split, err)
		}
		rep.RunName, rep.Split, rep.SplitFile, rep.PredictionsFile = runName, split, paths[split], "(generated by t2m "+cmd+")"
		if err := eval.WriteReports(res.Dir, split, results, rep); err != nil {
			return nil, err
		}
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
