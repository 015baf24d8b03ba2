package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/t2m/t2m/pipeline"
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

// runTrain converts the flags to pipeline.TrainOptions, connects Ctrl-C (and SIGTERM) to the run once
// it starts, and prints how to evaluate the adapter.
func runTrain(c *cli.Context) error {
	out := c.App.Writer
	opts := pipeline.TrainOptions{ModelOptions: modelOptions(c), DataDir: c.String("data-dir"),
		OutputDir: c.String("output-dir"), RunName: c.String("run-name"), Rank: c.Int("lora-r"),
		Alpha: c.Float64("lora-alpha"), Epochs: c.Int("epochs"), BatchSize: c.Int("batch-size"),
		GradAccum: c.Int("grad-accum"), LR: c.Float64("lr"), MaxLen: c.Int("max-len"), Seed: uint64(c.Int("seed")),
		Limit: c.Int("limit"), SaveEvery: c.Int("save-every"), Resume: c.Bool("resume"), Log: out,
		WatchInterrupts: func() (<-chan struct{}, func()) { return watchInterrupts(out) }}
	if err := opts.Validate(); err != nil {
		return err
	}
	if c.String("adapter") != "" {
		return fmt.Errorf("train: --adapter is for eval; train starts a new adapter (continue an interrupted run with --resume)")
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
	fmt.Fprintf(out, "adapter: %s\nevaluate it: t2m eval --model %s --adapter %s --data-dir %s --output-dir %s\n",
		res.AdapterDir, c.String("model"), res.AdapterDir, c.String("data-dir"), c.String("output-dir"))
	return nil
}

// watchInterrupts makes Ctrl-C (or SIGTERM) close stop, so the run saves a checkpoint at the end of the
// current micro-batch and exits with status 130; a second one kills. done stops watching.
func watchInterrupts(out io.Writer) (stop <-chan struct{}, done func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	stopc := make(chan struct{})
	go func() {
		if _, ok := <-sig; ok {
			// Stop first, then say so: whoever reads the message may rely on the run having been told.
			close(stopc)
			signal.Reset(os.Interrupt, syscall.SIGTERM)
			fmt.Fprintln(out, "\ninterrupted: saving a checkpoint at the end of the current micro-batch (interrupt again to abort)")
		}
	}()
	return stopc, func() { signal.Stop(sig); close(sig) }
}
