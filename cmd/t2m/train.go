package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/pipeline"
	"github.com/t2m/t2m/train"
)

// trainingFlags are the flags only train has: the recipe (LoRA, optimizer, schedule, batches, seed) and
// checkpointing. Their defaults are pipeline.DefaultTrainOptions, the original's recipe.
func trainingFlags() []cli.Flag {
	d := pipeline.DefaultTrainOptions()
	return []cli.Flag{
		&cli.IntFlag{Name: "lora-r", Value: d.Rank, Usage: "LoRA rank (with --init-adapter: the adapter's)"},
		&cli.Float64Flag{Name: "lora-alpha", Value: d.Alpha, Usage: "LoRA alpha (0 means 2×r; with --init-adapter: the adapter's)"},
		&cli.Float64Flag{Name: "lora-dropout", Value: d.Dropout, Usage: "dropout on the LoRA input during training, in [0, 1)"},
		&cli.StringFlag{Name: "target-modules", Value: strings.Join(d.Targets, ","), Usage: "comma-separated projections that carry LoRA, of " + strings.Join(lora.AllTargets, ",") + " (with --init-adapter: the adapter's)"},
		&cli.StringFlag{Name: "init-adapter", Usage: "start from this PEFT adapter's values instead of a fresh adapter; its rank, alpha and target modules are the run's"},
		&cli.IntFlag{Name: "epochs", Value: d.Epochs, Usage: "training epochs"},
		&cli.IntFlag{Name: "batch-size", Value: d.BatchSize, Usage: "sequences per micro-batch (on the GPU an update's sequences are packed into its micro-batches, one row each of at most this × the longest sequence's tokens; T2M_PACK=0: a padded row per sequence)"},
		&cli.IntFlag{Name: "grad-accum", Value: d.GradAccum, Usage: "gradient accumulation steps (micro-batches per update)"},
		&cli.Float64Flag{Name: "lr", Value: d.LR, Usage: "peak learning rate"},
		&cli.StringFlag{Name: "lr-scheduler", Value: d.Scheduler, Usage: "learning-rate schedule after the warmup: " + strings.Join(train.Schedulers, "|")},
		&cli.Float64Flag{Name: "warmup-ratio", Value: d.WarmupRatio, Usage: "fraction of the updates whose learning rate rises linearly from 0, in [0, 1]"},
		&cli.Float64Flag{Name: "weight-decay", Value: d.WeightDecay, Usage: "AdamW's decoupled weight decay (≥ 0)"},
		&cli.Float64Flag{Name: "max-grad-norm", Value: d.MaxGradNorm, Usage: "clip the gradients' global L2 norm to this (0: no clipping)"},
		&cli.IntFlag{Name: "seed", Value: int(d.Seed), Usage: "random seed (LoRA init, shuffling, dropout masks)"},
		&cli.IntFlag{Name: "save-every", Value: d.SaveEvery, Usage: "write a checkpoint every N updates (0: only at epoch ends, the end and Ctrl-C)"},
		&cli.BoolFlag{Name: "gradient-checkpointing", Usage: "on the GPU, recompute each layer's activations in the backward instead of keeping them: much less memory for long sequences or large batches, about one more forward pass of time; results unchanged"},
		&cli.Float64Flag{Name: "weight-cache-gib", Value: d.WeightCacheGiB, Usage: "on the GPU, keep bf16 copies of NF4 weights (smallest first) in up to this much memory, never beyond what the run's activations leave free, so they are not dequantized at every use: faster, results unchanged (0: off)"},
	}
}

// signalFlags are train's flags for evaluating during training and stopping early.
func signalFlags() []cli.Flag {
	d := pipeline.DefaultTrainOptions()
	return []cli.Flag{
		&cli.IntFlag{Name: "eval-every", Value: d.EvalEvery, Usage: "every N updates, generate for the first --eval-subset examples of eval and held_out and log the four layers' pass rates (0: never)"},
		&cli.IntFlag{Name: "eval-subset", Value: d.EvalSubset, Usage: "examples of each split that --eval-every generates for (the first N)"},
		&cli.IntFlag{Name: "max-new-tokens", Value: d.MaxNewTokens, Usage: "longest generation of --eval-every, in tokens"},
		&cli.IntFlag{Name: "early-stopping", Value: d.EarlyStopping, Usage: "stop after N --eval-every evaluations without improvement of --early-stopping-metric and keep the best one's adapter (0: never)"},
		&cli.StringFlag{Name: "early-stopping-metric", Value: d.EarlyStoppingMetric, Usage: "pass rate early stopping follows: " + strings.Join(pipeline.SignalMetrics(), "|")},
	}
}

func trainCommand() *cli.Command {
	return &cli.Command{
		Name:  "train",
		Usage: "QLoRA fine-tune the model on train.jsonl, save a PEFT adapter",
		UsageText: "t2m train --model ~/models/Qwen2.5-Coder-7B-Instruct --lora-r 8 --epochs 3\n" +
			"t2m train --model tiny --data-dir /tmp/d --limit 16 --epochs 1\n" +
			"t2m train --config recipe.yaml --lr 1e-4     # the recipe's values, --lr overridden",
		Description: "Trains LoRA adapters on the completions of train.jsonl with the original's SFTTrainer recipe\n" +
			"by default: r 8, alpha 16, dropout 0.05 on q,k,v,o,gate,up; AdamW at lr 2e-4, cosine schedule\n" +
			"with 5% warmup, no weight decay, max grad norm 1.0; loss over the completion tokens of each\n" +
			"accumulation window. After each epoch it computes the eval loss on eval.jsonl and keeps the\n" +
			"best epoch's adapter in <output-dir>/<run>/adapter (PEFT format). Progress goes to\n" +
			"metrics.jsonl; checkpoint/ is written every --save-every updates, at each epoch end and on\n" +
			"Ctrl-C, and --resume continues from it exactly (a changed recipe is refused). At the end,\n" +
			"curves.png draws the training loss, the eval loss and the pass rates of --eval-every.\n\n" +
			"--eval-every N generates greedily for the first --eval-subset examples of eval and held_out\n" +
			"every N updates and logs the four layers' pass rates per split; --early-stopping K then stops\n" +
			"after K evaluations without improvement of --early-stopping-metric (a tie is none), the adapter\n" +
			"folder holding the best evaluation's adapter (the checkpoint the last state). Neither changes\n" +
			"the training's numbers.\n\n" +
			"--config FILE (.yaml, .yml, .json or .toml) sets any of the flags below except --config and\n" +
			"--resume by name (lora-r: 16); flags given on the command line override it, and an unknown\n" +
			"key is an error.",
		Flags: append(append(recipeFlags(append(append(runFlags(), trainingFlags()...), signalFlags()...)),
			gpusFlag(true),
			&cli.StringFlag{Name: "config", Usage: "recipe file (.yaml, .yml, .json, .toml) of flag values; flags given here override it"},
			&cli.BoolFlag{Name: "resume", Usage: "continue the run from <output-dir>/<run>/checkpoint (same flags and recipe)"}),
			// Hidden, only to say where it belongs: train starts from --init-adapter or continues with --resume.
			&cli.StringFlag{Name: "adapter", Hidden: true}),
		Before: applyRecipe,
		Action: runTrain,
	}
}

// trainOptions converts train's flags (after the recipe was applied) to pipeline.TrainOptions. With
// --init-adapter, --lora-r, --lora-alpha and --target-modules are passed only when given, so that they
// default to the adapter's.
func trainOptions(c *cli.Context) (pipeline.TrainOptions, pipeline.TokenizerChoice, error) {
	mo, tok := resolveModel(c) // first: it may set --max-len
	opts := pipeline.TrainOptions{ModelOptions: mo, DataDir: c.String("data-dir"), CommandLine: commandLine(),
		OutputDir: c.String("output-dir"), RunName: c.String("run-name"), Rank: c.Int("lora-r"),
		Alpha: c.Float64("lora-alpha"), Dropout: c.Float64("lora-dropout"), InitAdapter: c.String("init-adapter"),
		Epochs: c.Int("epochs"), BatchSize: c.Int("batch-size"), GradAccum: c.Int("grad-accum"), LR: c.Float64("lr"),
		Scheduler: c.String("lr-scheduler"), WarmupRatio: c.Float64("warmup-ratio"), WeightDecay: c.Float64("weight-decay"),
		MaxGradNorm: c.Float64("max-grad-norm"), MaxLen: c.Int("max-len"), Seed: uint64(c.Int("seed")),
		Limit: c.Int("limit"), SaveEvery: c.Int("save-every"), Resume: c.Bool("resume"),
		GradientCheckpointing: c.Bool("gradient-checkpointing"), WeightCacheGiB: c.Float64("weight-cache-gib"),
		EvalEvery: c.Int("eval-every"), EvalSubset: c.Int("eval-subset"), MaxNewTokens: c.Int("max-new-tokens"),
		EarlyStopping: c.Int("early-stopping"), EarlyStoppingMetric: c.String("early-stopping-metric")}
	if c.IsSet("target-modules") || opts.InitAdapter == "" {
		targets, err := lora.ParseTargets(c.String("target-modules"))
		if err != nil {
			return opts, tok, fmt.Errorf("train: --target-modules: %w", err)
		}
		opts.Targets = targets
	}
	if opts.InitAdapter != "" {
		if !c.IsSet("lora-r") {
			opts.Rank = 0
		}
		if !c.IsSet("lora-alpha") {
			opts.Alpha = 0
		}
	}
	if opts.Scheduler == "" { // an explicit "" is not the default
		return opts, tok, fmt.Errorf("train: --lr-scheduler: %w", train.CheckScheduler(""))
	}
	if opts.EarlyStoppingMetric == "" { // likewise
		return opts, tok, fmt.Errorf("train: --early-stopping-metric \"\" is not one of %s", strings.Join(pipeline.SignalMetrics(), ", "))
	}
	return opts, tok, nil
}

// runTrain converts the flags to pipeline.TrainOptions, connects Ctrl-C (and SIGTERM) to the run once
// it starts, and prints how to evaluate the adapter.
func runTrain(c *cli.Context) error {
	out := c.App.Writer
	if c.String("adapter") != "" {
		return fmt.Errorf("train: --adapter is for eval; train starts from a fresh adapter, from an adapter's values with --init-adapter DIR, " +
			"or continues an interrupted run with --resume")
	}
	maxLenGiven := c.IsSet("max-len") // before trainOptions, which may set it
	opts, tok, err := trainOptions(c)
	if err != nil {
		return err
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	return ranked(c, "train", func(group train.Collective, quiet bool) error {
		if quiet {
			out = io.Discard // rank 0 reports for all
		}
		opts.Group, opts.Log = group, out
		opts.WatchInterrupts = func() (<-chan struct{}, func()) { return watchInterrupts(out) }
		return trainRank(c, opts, tok, maxLenGiven, out)
	})
}

// trainRank is runTrain's work in one process (all of it, or one rank's share).
func trainRank(c *cli.Context, opts pipeline.TrainOptions, tok pipeline.TokenizerChoice, maxLenGiven bool, out io.Writer) error {
	fmt.Fprintf(out, "tokenizer: %s\n", tok)
	if tok.Bytes() && !maxLenGiven {
		fmt.Fprintf(out, "max-len: %d (the byte tokenizer's default; --max-len sets it)\n", opts.MaxLen)
	}
	res, err := pipeline.Train(opts)
	var stopped *pipeline.Interrupted
	if errors.As(err, &stopped) {
		return cli.Exit(fmt.Sprintf("t2m train: interrupted; checkpoint saved in %s: continue with the same flags plus --resume",
			stopped.CheckpointDir), 130)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "adapter: %s\nevaluate it: %s\n", res.AdapterDir, evalCommandLine(c, opts, tok, res.AdapterDir))
	return nil
}

// evalCommandLine is the `t2m eval` command that evaluates a trained adapter on the run's data with its
// settings: the model, its quantization when given, the data folder, --max-len, --limit and the tokenizer
// (its resolved path, so the environment need not be the same), each argument quoted for a POSIX shell
// where needed.
func evalCommandLine(c *cli.Context, opts pipeline.TrainOptions, tok pipeline.TokenizerChoice, adapter string) string {
	args := []string{"t2m", "eval", "--model", opts.Model, "--adapter", adapter, "--data-dir", opts.DataDir,
		"--output-dir", opts.OutputDir, "--max-len", strconv.Itoa(opts.MaxLen)}
	if opts.Limit > 0 {
		args = append(args, "--limit", strconv.Itoa(opts.Limit))
	}
	if opts.Tokenizer != "" {
		args = append(args, "--tokenizer", opts.Tokenizer)
	}
	if c.IsSet("quantize") {
		args = append(args, "--quantize", opts.Quantize)
	}
	if c.IsSet("device") {
		args = append(args, "--device", opts.Device)
	}
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	return strings.Join(args, " ")
}

// shellQuote quotes s for a POSIX shell when it holds anything but letters, digits and -_./:=,+@%.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// watchInterrupts makes Ctrl-C (or SIGTERM) close stop, so the run saves a checkpoint at the end of the
// current micro-batch and exits with status 130; a second one kills. done stops watching.
func watchInterrupts(out io.Writer) (stop <-chan struct{}, done func()) {
	return notifyInterrupts(out, "interrupted: saving a checkpoint at the end of the current micro-batch (interrupt again to abort)")
}
