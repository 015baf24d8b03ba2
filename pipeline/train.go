package pipeline

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"time"

	"github.com/t2m/t2m/train"
)

// TrainConfigFile is the run's record of its settings and results (the original's training_config.json),
// written into the run folder at the end of Train.
const TrainConfigFile = "training_config.json"

// TrainOptions configure Train. DefaultTrainOptions gives the command line's defaults (the original's
// recipe); in a literal, the recipe's zero values mean no dropout, no warmup, no weight decay and no
// clipping, a "" Scheduler cosine and nil Targets the default ones.
type TrainOptions struct {
	ModelOptions
	// DataDir holds train.jsonl and eval.jsonl (the eval loss after each epoch).
	DataDir string
	// OutputDir receives the run folder OutputDir/RunName: adapter/, checkpoint/, metrics.jsonl and
	// TrainConfigFile.
	OutputDir string
	// RunName names the run folder ("": <model>_r<rank>).
	RunName string
	// Rank is the LoRA rank (positive; 0 with InitAdapter: the adapter's); Alpha its alpha (0: 2×Rank, or
	// the adapter's).
	Rank  int
	Alpha float64
	// Dropout is LoRA's input dropout during training, in [0, 1) (train.DefaultDropout).
	Dropout float64
	// Targets are the adapted projections, some of lora.AllTargets (nil: lora.DefaultTargets, or the
	// adapter's with InitAdapter).
	Targets []string
	// InitAdapter is a PEFT adapter folder whose values the run starts from instead of a fresh adapter;
	// its rank, alpha and targets are the run's (setting a different Rank, Alpha or Targets is an error).
	InitAdapter string
	// Epochs, BatchSize (micro-batch), GradAccum (micro-batches per update) and LR (peak learning rate)
	// are the SFTTrainer settings.
	Epochs, BatchSize, GradAccum int
	LR                           float64
	// Scheduler is the learning-rate schedule after the warmup: cosine, linear or constant (train.Schedulers;
	// "": cosine). WarmupRatio is the fraction of updates that warm up linearly from 0, in [0, 1]
	// (HF's ceil(updates × ratio)).
	Scheduler   string
	WarmupRatio float64
	// WeightDecay is AdamW's decoupled weight decay (≥ 0); MaxGradNorm clips the gradients' global norm
	// to it (0: no clipping).
	WeightDecay, MaxGradNorm float64
	// MaxLen is the most tokens per example (prompt + completion): longer ones are cut from the right.
	MaxLen int
	// Seed seeds the LoRA init, the shuffles and the dropout masks.
	Seed uint64
	// Limit keeps the first Limit examples of each split (0: all).
	Limit int
	// SaveEvery writes a checkpoint every this many updates (0: only at epoch ends, the end and on a stop).
	SaveEvery int
	// Resume continues the run from its checkpoint/ (same options); otherwise an existing checkpoint is
	// an error.
	Resume bool
	// EvalEvery, when > 0, generates greedily (up to MaxNewTokens) for the first EvalSubset examples of
	// eval and of held_out (within Limit) after every EvalEvery-th update with the current adapter, and
	// logs the four layers' pass rates of each split (SignalMetrics) to metrics.jsonl and the progress
	// output. The training's numbers do not change.
	EvalEvery, EvalSubset, MaxNewTokens int
	// EarlyStopping, when > 0, stops the run after that many evaluations without improvement of
	// EarlyStoppingMetric (one of SignalMetrics; "": DefaultEarlyStoppingMetric; a tie is no improvement),
	// and the adapter folder holds the best evaluation's adapter (the checkpoint the last state).
	EarlyStopping       int
	EarlyStoppingMetric string
	// GradientCheckpointing recomputes each layer's activations in the backward instead of keeping them
	// from the forward (a backend that supports it, train.Recomputer: the GPU machine): less device memory
	// for longer sequences or larger batches, at the cost of a second forward of every layer. Results are
	// unchanged.
	GradientCheckpointing bool
	// WeightCacheGiB bounds the dequantized (bf16) copies of NF4 weights a backend that can (train.WeightCacher:
	// the GPU machine) keeps on the device, so that they skip the dequantization at each use: smallest weights
	// first, never beyond the memory the activation plan leaves free. 0 turns it off. Results are unchanged.
	WeightCacheGiB float64
	// Log receives progress lines (nil: discarded).
	Log io.Writer
	// WatchInterrupts, when set, is called once, after loading and right before the first update. Closing
	// its stop channel makes the run save a checkpoint at the end of the current micro-batch and return an
	// *Interrupted error; Train calls done when the run ends. t2m connects it to SIGINT and SIGTERM there,
	// so an interrupt during loading still ends the process at once.
	WatchInterrupts func() (stop <-chan struct{}, done func())
	// CommandLine is recorded in training_config.json's provenance (nil: os.Args).
	CommandLine []string
	// Group, with more than one rank, makes this Train one replica of a data-parallel run (one process per
	// GPU; see train.Run.Group): the same options on every rank; rank 0 alone takes the run folder's lock
	// and writes. The other ranks return a TrainResult without Record.
	Group train.Collective
}

// TrainResult is a finished training run.
type TrainResult struct {
	train.Result             // updates, losses, the best epoch's adapter folder, time per update
	RunName      string      // the run folder's name
	Dir          string      // OutputDir/RunName
	Device       string      // the training backend's name ("cpu", "cuda: NVIDIA H200 ...")
	Model        *Model      // the model trained (weights, tokenizer)
	Record       TrainRecord // what TrainConfigFile holds
}

// Validate checks what can be checked before anything is read: the rank, the counts, the learning rate
// and the run name. Each error names the flag and says what it accepts. The rank is checked against the
// model's projection sizes once the model is known (lora.New).
func (o TrainOptions) Validate() error {
	if o.Rank < 0 || (o.Rank == 0 && o.InitAdapter == "") {
		return fmt.Errorf("train: --lora-r %d must be positive", o.Rank)
	}
	if math.IsNaN(o.Alpha) || math.IsInf(o.Alpha, 0) || o.Alpha < 0 {
		return fmt.Errorf("train: --lora-alpha %v must be a finite number ≥ 0 (0: 2 × --lora-r)", o.Alpha)
	}
	if math.IsNaN(o.LR) || math.IsInf(o.LR, 0) || o.LR <= 0 {
		return fmt.Errorf("train: --lr %v must be a finite number > 0 (the original uses 2e-4)", o.LR)
	}
	if math.IsNaN(o.WeightCacheGiB) || math.IsInf(o.WeightCacheGiB, 0) || o.WeightCacheGiB < 0 {
		return fmt.Errorf("train: --weight-cache-gib %v must be a finite number of GiB ≥ 0 (0: off)", o.WeightCacheGiB)
	}
	for _, c := range []struct {
		flag string
		v    int
		min  int
		note string
	}{{"--epochs", o.Epochs, 1, ""}, {"--batch-size", o.BatchSize, 1, ""}, {"--grad-accum", o.GradAccum, 1, ""},
		{"--max-len", o.MaxLen, 1, ""}, {"--limit", o.Limit, 0, " (0: every example)"},
		{"--save-every", o.SaveEvery, 0, " (0: only at epoch ends, the end and Ctrl-C)"}} {
		if c.v < c.min {
			return fmt.Errorf("train: %s %d must be ≥ %d%s", c.flag, c.v, c.min, c.note)
		}
	}
	if err := CheckRunName(o.RunName); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := o.validateSignal(); err != nil {
		return err
	}
	return o.validateRecipe()
}

// Interrupted is Train's error when WatchInterrupts' stop channel was closed: a checkpoint of the last
// update is in CheckpointDir, and Train with Resume continues the run exactly. It wraps
// train.ErrInterrupted.
type Interrupted struct {
	CheckpointDir string
}

// Error says where the checkpoint is.
func (e *Interrupted) Error() string {
	return fmt.Sprintf("training interrupted; checkpoint saved in %s: continue with --resume", e.CheckpointDir)
}

// Unwrap gives train.ErrInterrupted.
func (e *Interrupted) Unwrap() error { return train.ErrInterrupted }

// Train fine-tunes LoRA adapters (q,k,v,o,gate,up; dropout 0.05) on the completions of DataDir's
// train.jsonl with the original's SFTTrainer settings (see package train), computes the eval loss on
// eval.jsonl after each epoch, keeps the best epoch's adapter in OutputDir/<run>/adapter (PEFT format),
// writes checkpoints every SaveEvery updates, at epoch ends and on an interrupt, and records the run in
// TrainConfigFile. Its errors start with "train:".
func Train(opts TrainOptions) (*TrainResult, error) {
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	begun := time.Now()
	signal, err := readSignalSet(opts)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	s, err := setUpTraining(opts, log)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer s.lock.Release()
	defer s.backend.Close()
	if signal != nil {
		if s.run.Evaluate, err = signal.evaluator(s.model, opts, log); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		s.run.EvalEvery = opts.EvalEvery
		if opts.EarlyStopping > 0 {
			s.run.EarlyStopping, s.run.EarlyStoppingMetric = opts.EarlyStopping, opts.earlyStoppingMetric()
		}
	}
	in, err := trainInputs(opts)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	loaded := time.Since(begun)
	if opts.WatchInterrupts != nil {
		stop, done := opts.WatchInterrupts()
		defer done()
		s.run.Stop = stop
	}
	fmt.Fprintf(log, "run %s: model %s (%s), LoRA r=%d alpha=%g, %d parameters, device %s\n",
		s.runName, s.model.Name, s.model.Quant, s.run.Adapter.Config.R, s.run.Adapter.Config.Alpha, s.run.Adapter.NumParams(), s.backend.Name())
	var planned *train.MemoryReport
	if mr, ok := s.backend.(train.MemoryReporter); ok {
		if r, err := mr.Memory(); err == nil {
			planned = &r
			fmt.Fprintf(log, "device memory planned: %s\n", describeMemory(r))
		}
	}
	started := time.Now()
	res, err := s.run.Train()
	if errors.Is(err, train.ErrInterrupted) {
		return nil, &Interrupted{CheckpointDir: filepath.Join(s.run.Dir, "checkpoint")}
	}
	if err != nil {
		return nil, err // train.Run's errors start with "train:"
	}
	rank, world := train.RankOf(opts.Group)
	if rank != 0 {
		return &TrainResult{Result: *res, RunName: s.runName, Dir: s.run.Dir, Device: s.backend.Name(), Model: s.model}, nil
	}
	metrics, err := train.ReadMetrics(filepath.Join(s.run.Dir, "metrics.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	rec := s.record(res, time.Since(started))
	rec.Signal = signalRecord(opts, res, metrics)
	rec.Provenance = in.trainProvenance(opts, s.model, loaded, time.Since(started), time.Since(begun))
	if world > 1 {
		rec.GPUs = world
	}
	if planned != nil {
		rec.DeviceMemoryPlanned = planned
		if r, err := s.backend.(train.MemoryReporter).Memory(); err == nil {
			rec.DeviceMemoryPeak = &r
			fmt.Fprintf(log, "device memory at the end: %s\n", describeMemory(r))
		}
	}
	if err := writeTrainRecord(filepath.Join(s.run.Dir, TrainConfigFile), rec); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	curves := filepath.Join(s.run.Dir, CurvesFile)
	if err := WriteCurves(curves, s.runName, metrics); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	fmt.Fprintf(log, "curves: %s\n", curves)
	return &TrainResult{Result: *res, RunName: s.runName, Dir: s.run.Dir, Device: s.backend.Name(), Model: s.model,
		Record: rec}, nil
}

// describeMemory is one line about a backend's device memory.
func describeMemory(r train.MemoryReport) string {
	gib := func(b int64) float64 { return float64(b) / (1 << 30) }
	cache := ""
	if r.CachedWeights > 0 {
		cache = fmt.Sprintf(" (of which %.2f GiB bf16 copies of %d NF4 weights)", gib(r.WeightCacheBytes), r.CachedWeights)
	}
	return fmt.Sprintf("%.2f GiB weights%s, %.2f GiB LoRA + optimizer, %.2f GiB activations (plan) = %.2f GiB held; "+
		"%.2f GiB in use on the GPU (nvidia-smi's number)", gib(r.WeightsBytes), cache, gib(r.LoRABytes), gib(r.ActivationBytes),
		gib(r.ArenaBytes), gib(r.DeviceUsedBytes))
}
