package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/eval"
	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/tokenizer"
	"github.com/t2m/t2m/train"
)

func trainCommand() *cli.Command {
	return &cli.Command{
		Name:  "train",
		Usage: "QLoRA fine-tune the model on train.jsonl, save a PEFT adapter",
		UsageText: "t2m train --model ~/models/Qwen2.5-Coder-7B-Instruct --lora-r 8 --epochs 3\n" +
			"t2m train --model tiny --data-dir /tmp/d --limit 16 --epochs 1 --max-len 2048",
		Description: "Trains LoRA adapters (q,k,v,o,gate,up; dropout 0.05) on the completions of train.jsonl with\n" +
			"the original's SFTTrainer settings: AdamW, cosine schedule with 5% warmup, max grad norm 1.0,\n" +
			"loss over the completion tokens of each accumulation window. After each epoch it computes the\n" +
			"eval loss on eval.jsonl and keeps the best epoch's adapter in <output-dir>/<run>/adapter (PEFT\n" +
			"format). Progress goes to metrics.jsonl; checkpoint/ is written every --save-every updates, at\n" +
			"each epoch end and on Ctrl-C, and --resume continues from it exactly.",
		Flags: append(modelFlags(),
			&cli.IntFlag{Name: "save-every", Value: 50, Usage: "write a checkpoint every N updates (0: only at epoch ends, the end and Ctrl-C)"},
			&cli.BoolFlag{Name: "resume", Usage: "continue the run from <output-dir>/<run>/checkpoint (same flags)"},
		),
		Action: runTrain,
	}
}

// trainConfigFile is the run's record of its settings and results (the original's training_config.json).
const trainConfigFile = "training_config.json"

func runTrain(c *cli.Context) error {
	out := c.App.Writer
	rank := c.Int("lora-r")
	if rank <= 0 {
		return fmt.Errorf("train: --lora-r %d must be positive", rank)
	}
	runName := c.String("run-name")
	if err := checkRunName(runName); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if c.String("adapter") != "" {
		return fmt.Errorf("train: --adapter is for eval; train starts a new adapter (continue an interrupted run with --resume)")
	}
	limit := c.Int("limit")
	trainEx, _, err := readSplit(c.String("data-dir"), "train", limit)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	evalEx, _, err := readSplit(c.String("data-dir"), "eval", limit)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	lm, err := loadForCommand(c, "train")
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if runName == "" {
		runName = fmt.Sprintf("%s_r%d", lm.Name, rank)
	}
	maxLen := c.Int("max-len")
	trainSeqs, st, err := data.Tokenize(lm.Tok, trainEx, maxLen)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	fmt.Fprintf(out, "train: %d examples, %d kept, %d truncated, %d dropped (prompt ≥ --max-len %d)\n", len(trainEx), st.Kept, st.Truncated, st.Dropped, maxLen)
	evalSeqs, est, err := data.Tokenize(lm.Tok, evalEx, maxLen)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	fmt.Fprintf(out, "eval:  %d examples, %d kept, %d truncated, %d dropped\n", len(evalEx), est.Kept, est.Truncated, est.Dropped)
	tokens := 0
	for _, s := range trainSeqs {
		tokens += len(s.IDs)
	}

	w := lm.Weights
	lcfg := lora.Config{R: rank, Alpha: c.Float64("lora-alpha"), Dropout: train.DefaultDropout, BaseModel: lm.Source}
	adapter, err := lora.New(lcfg, w.Config.NumLayers, w.Config.LoRADims(), uint64(c.Int("seed")))
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	lp, err := model.LoRAFromAdapter(adapter)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	lp.Dropout = float32(train.DefaultDropout)
	params := train.NewParams(lp)
	factory, ok := train.LookupBackend(lm.Device)
	if !ok {
		return fmt.Errorf("train: no %s backend in this binary", lm.Device)
	}
	backend, err := factory(w, params)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	defer backend.Close()
	if r, ok := backend.(train.ShapeReserver); ok { // the GPU machine: one shape, the largest micro-batch
		longest := 0
		for _, s := range append(append([]data.Sequence{}, trainSeqs...), evalSeqs...) {
			longest = max(longest, len(s.IDs))
		}
		seq := (longest + train.DefaultBucket - 1) / train.DefaultBucket * train.DefaultBucket
		if err := r.Reserve(c.Int("batch-size"), seq); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}

	fp := train.Fingerprint{Model: lm.Source, Rank: rank, Alpha: adapter.Config.Alpha, Dropout: train.DefaultDropout,
		Epochs: c.Int("epochs"), BatchSize: c.Int("batch-size"), GradAccum: c.Int("grad-accum"), LR: c.Float64("lr"),
		Scheduler: train.DefaultScheduler, WarmupRatio: train.DefaultWarmupRatio, WeightDecay: train.DefaultWeightDecay,
		MaxGradNorm: train.DefaultMaxGradNorm, MaxLen: maxLen, Seed: uint64(c.Int("seed")),
		TrainSeqs: len(trainSeqs), TrainTokens: tokens, EvalSeqs: len(evalSeqs), Quantization: lm.Quant}
	padID := int32(0)
	if id, ok := lm.Tok.TokenID(tokenizer.EndOfText); ok {
		padID = int32(id) // Qwen2's pad token
	}
	dir := filepath.Join(c.String("output-dir"), runName)
	run := &train.Run{Dir: dir, Fingerprint: fp, SaveEvery: c.Int("save-every"), PadID: padID, Resume: c.Bool("resume"),
		Adapter: adapter, Params: params, Backend: backend, TrainSeqs: trainSeqs, EvalSeqs: evalSeqs, Log: out}

	// Ctrl-C (or SIGTERM): stop at the next micro-batch, save a checkpoint of the last update, exit with
	// status 130; a second one kills.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	stop := make(chan struct{})
	go func() {
		if _, ok := <-sig; ok {
			fmt.Fprintln(out, "\ninterrupted: saving a checkpoint at the end of the current micro-batch (interrupt again to abort)")
			signal.Reset(os.Interrupt, syscall.SIGTERM)
			close(stop)
		}
	}()
	defer func() { signal.Stop(sig); close(sig) }()
	run.Stop = stop

	fmt.Fprintf(out, "run %s: model %s (%s), LoRA r=%d alpha=%g, %d parameters, device %s\n",
		runName, lm.Name, lm.Quant, rank, adapter.Config.Alpha, adapter.NumParams(), backend.Name())
	started := time.Now()
	res, err := run.Train()
	if errors.Is(err, train.ErrInterrupted) {
		return cli.Exit(fmt.Sprintf("t2m train: interrupted; checkpoint saved in %s: continue with the same flags plus --resume",
			filepath.Join(dir, "checkpoint")), 130)
	}
	if err != nil {
		return err
	}
	record := map[string]any{"run_name": runName, "model": lm.Name, "model_source": lm.Source, "config": fp,
		"effective_batch_size": fp.BatchSize * fp.GradAccum, "lora_target_modules": adapter.Config.Targets,
		"device": backend.Name(), "updates": res.Steps, "final_train_loss": res.FinalLoss, "eval_losses": res.EvalLosses,
		"best_eval_loss": res.BestEval, "seconds_per_update": res.StepSeconds, "wall_seconds": time.Since(started).Seconds()}
	if err := eval.WriteFileAtomic(filepath.Join(dir, trainConfigFile), func(bw *bufio.Writer) error {
		enc := json.NewEncoder(bw)
		enc.SetIndent("", "  ")
		return enc.Encode(record)
	}); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	fmt.Fprintf(out, "adapter: %s\nevaluate it: t2m eval --model %s --adapter %s --data-dir %s --output-dir %s\n",
		res.AdapterDir, c.String("model"), res.AdapterDir, c.String("data-dir"), c.String("output-dir"))
	return nil
}
