package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

// DefaultTrainOptions are t2m train's defaults, the original's SFTTrainer recipe: LoRA r 8 (alpha 2r),
// dropout 0.05 on q/k/v/o/gate/up; 3 epochs of micro-batches of 4 accumulated 4 times; AdamW at a peak lr
// of 2e-4 without weight decay, a cosine schedule with 5% warmup, gradients clipped to norm 1; --max-len
// 512, seed 42, a checkpoint every 50 updates; no evaluation during training (EvalEvery 0; when set: the first
// 32 examples of each split, up to 256 new tokens, early stopping on held_out_overall). Fill in the model
// and the folders.
func DefaultTrainOptions() TrainOptions {
	return TrainOptions{Rank: 8, Epochs: 3, BatchSize: 4, GradAccum: 4, LR: 2e-4, MaxLen: data.DefaultMaxLen, Seed: 42,
		SaveEvery: 50, Dropout: train.DefaultDropout, Targets: slices.Clone(lora.DefaultTargets),
		Scheduler: train.DefaultScheduler, WarmupRatio: train.DefaultWarmupRatio, WeightDecay: train.DefaultWeightDecay,
		MaxGradNorm: train.DefaultMaxGradNorm, EvalSubset: DefaultEvalSubset, MaxNewTokens: model.DefaultMaxNewTokens,
		EarlyStoppingMetric: DefaultEarlyStoppingMetric, WeightCacheGiB: train.DefaultWeightCacheGiB}
}

// scheduler is the run's learning-rate schedule ("" is the default).
func (o TrainOptions) scheduler() string {
	if o.Scheduler == "" {
		return train.DefaultScheduler
	}
	return o.Scheduler
}

// validateRecipe checks the recipe's fields (targets, schedule, warmup, weight decay, clipping, dropout),
// each error naming the flag and what it accepts.
func (o TrainOptions) validateRecipe() error {
	if o.Targets != nil {
		if _, err := lora.ParseTargets(strings.Join(o.Targets, ",")); err != nil {
			return fmt.Errorf("train: --target-modules: %w", err)
		}
	}
	fp := train.Fingerprint{Scheduler: o.scheduler(), WarmupRatio: o.WarmupRatio, WeightDecay: o.WeightDecay,
		MaxGradNorm: o.MaxGradNorm, Dropout: o.Dropout}
	if err := train.CheckRecipe(fp); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return nil
}

// startAdapter is the adapter a run starts from: fresh from the seed (lora.New), or InitAdapter's values.
type startAdapter struct {
	adapter *lora.Adapter
	path    string // InitAdapter, cleaned ("": fresh)
	sha256  string // of InitAdapter's lora.WeightsFile
}

// newStartAdapter makes the run's adapter for m. A fresh one has Rank, Alpha (0: 2×Rank) and Targets (nil:
// lora.DefaultTargets). With InitAdapter, the rank, alpha and target modules are the adapter's: a Rank,
// Alpha or Targets that is set and differs is an error, as is an adapter for another base model's shapes
// or one that adapts a projection in only some layers. The dropout is always opts.Dropout (a training
// setting, not the adapter's).
func newStartAdapter(opts TrainOptions, m *Model) (*startAdapter, error) {
	w := m.Weights
	if opts.InitAdapter == "" {
		cfg := lora.Config{R: opts.Rank, Alpha: opts.Alpha, Dropout: opts.Dropout, Targets: opts.Targets, BaseModel: m.Source}
		a, err := lora.New(cfg, w.Config.NumLayers, w.Config.LoRADims(), opts.Seed)
		if err != nil {
			return nil, err
		}
		return &startAdapter{adapter: a}, nil
	}
	dir := filepath.Clean(opts.InitAdapter)
	a, err := lora.Load(dir, w.Config.LoRADims())
	if err != nil {
		return nil, fmt.Errorf("--init-adapter %s: %w (an adapter of another base model than --model %s?)", dir, err, m.Name)
	}
	cfg := a.Config
	from := func(flag string, want, have any) error {
		return fmt.Errorf("--init-adapter %s has %v, but %s %v was given: the rank, alpha and target modules of a run that starts from an adapter are the adapter's; leave %s out (or pass the adapter's value)",
			dir, have, flag, want, flag)
	}
	switch {
	case opts.Rank != 0 && opts.Rank != cfg.R:
		return nil, from("--lora-r", opts.Rank, fmt.Sprintf("r=%d", cfg.R))
	case opts.Alpha != 0 && opts.Alpha != cfg.Alpha:
		return nil, from("--lora-alpha", opts.Alpha, fmt.Sprintf("lora_alpha=%g", cfg.Alpha))
	case opts.Targets != nil && train.TargetsKey(opts.Targets) != train.TargetsKey(cfg.Targets):
		return nil, from("--target-modules", strings.Join(opts.Targets, ","), "target_modules="+strings.Join(cfg.Targets, ","))
	}
	for _, t := range cfg.Targets {
		for l := range w.Config.NumLayers {
			if a.Pair(l, t) == nil {
				return nil, fmt.Errorf("--init-adapter %s has no %s in layer %d: t2m trains a target module in every layer (layers_to_transform is not supported for training)", dir, t, l)
			}
		}
	}
	a.Config.Dropout, a.Config.BaseModel = opts.Dropout, m.Source
	sum, err := adapterWeightsSHA256(dir)
	if err != nil {
		return nil, fmt.Errorf("--init-adapter: %w", err)
	}
	return &startAdapter{adapter: a, path: dir, sha256: sum}, nil
}

// adapterWeightsSHA256 is the hex SHA-256 of an adapter folder's lora.WeightsFile.
func adapterWeightsSHA256(dir string) (string, error) {
	f, err := os.Open(filepath.Join(dir, lora.WeightsFile))
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// describeRecipe is the log line that says what a run trains with.
func describeRecipe(fp train.Fingerprint) string {
	s := fmt.Sprintf("recipe: LoRA r=%d alpha=%g dropout %g on %s; AdamW lr %g, weight decay %g, %s schedule, warmup ratio %g, max grad norm %g",
		fp.Rank, fp.Alpha, fp.Dropout, fp.Targets, fp.LR, fp.WeightDecay, fp.Scheduler, fp.WarmupRatio, fp.MaxGradNorm)
	if fp.InitAdapter != "" {
		s += fmt.Sprintf("; starting from %s (sha256 %.12s…)", fp.InitAdapter, fp.InitAdapterSHA256)
	}
	return s
}
