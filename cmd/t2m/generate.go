package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/t2m/t2m/eval"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/pipeline"
	"github.com/t2m/t2m/train"
)

// generationFlags are the flags baseline and eval add to modelFlags.
func generationFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "max-new-tokens", Value: model.DefaultMaxNewTokens, Usage: "stop each generation after this many tokens"},
		&cli.StringFlag{Name: "held-out-collections", Value: strings.Join(eval.DefaultHeldOutCollections, ","), Usage: "collections counted as held-out schemas by the generalization layer"},
		gpusFlag(false),
		&cli.IntFlag{Name: "generation-batch", Usage: fmt.Sprintf("sequences decoded together; when one ends the next prompt takes its place (0: %d on the CPU, %d on a GPU)", pipeline.DefaultGenerationBatch, pipeline.DefaultGPUGenerationBatch)},
		&cli.BoolFlag{Name: "overwrite", Usage: "replace the reports of a run folder that already holds some (without it such a run is refused)"},
	}
}

func baselineCommand() *cli.Command {
	return &cli.Command{
		Name:      "baseline",
		Usage:     "evaluate the base model zero-shot on the eval and held-out splits",
		UsageText: "t2m baseline --model ~/models/Qwen2.5-Coder-7B-Instruct --data-dir data\nt2m baseline --model tiny --data-dir /tmp/d --limit 8 --max-new-tokens 32",
		Description: "Generates greedily (up to --max-new-tokens, stopping at <|im_end|> or <|endoftext|>) for every\n" +
			"example of eval.jsonl and held_out.jsonl with the base model, and scores the outputs like\n" +
			"`t2m score`: <output-dir>/<run>/{eval,held_out}_predictions.jsonl and _report.json\n" +
			"(run name default <model>_baseline), each report with its provenance (command line, model,\n" +
			"tokenizer, data sha256, settings, timings, t2m version, GPU). A run folder that already holds\n" +
			"reports is refused unless --overwrite. Ctrl-C stops before the next batch (exit status 130)\n" +
			"and writes no report of the unfinished split.\n\n" +
			"On a GPU, NF4 weights stay at 4 bits (about 5.3 GiB at 7B). With T2M_GPU_WEIGHTS=bf16 in the\n" +
			"environment they are dequantized to bf16 once at load instead (about 14 GiB): faster at large\n" +
			"generation batches, above all with an adapter (see README, Generation on the GPU).",
		Flags:  append(runFlags(), generationFlags()...), // no --adapter: baseline is the base model
		Action: func(c *cli.Context) error { return runGenerate(c, "baseline") },
	}
}

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:      "eval",
		Usage:     "evaluate a fine-tuned adapter on the eval and held-out splits",
		UsageText: "t2m eval --model ~/models/Qwen2.5-Coder-7B-Instruct --adapter runs/r8/adapter --run-name r8",
		Description: "Like baseline, with the PEFT adapter of --adapter applied (not merged). The run name defaults\n" +
			"to the adapter's run folder (runs/<run>/adapter → <run>). The reports' provenance adds the\n" +
			"adapter's path and the sha256 of its adapter_model.safetensors.",
		Flags:  append(modelFlags(), generationFlags()...),
		Action: func(c *cli.Context) error { return runGenerate(c, "eval") },
	}
}

// runGenerate is baseline (no adapter) and eval (--adapter required): flags to pipeline.EvalOptions, then
// each split's report as it is written.
func runGenerate(c *cli.Context, cmd string) error {
	out := c.App.Writer
	if err := checkRunName(c.String("run-name")); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	adapterDir := c.String("adapter")
	switch {
	case cmd == "eval" && adapterDir == "":
		return fmt.Errorf("eval: --adapter DIR is required (the adapter folder t2m train wrote, e.g. runs/<run>/adapter); use t2m baseline for the base model")
	}
	var heldOut []string
	for _, s := range strings.Split(c.String("held-out-collections"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			heldOut = append(heldOut, s)
		}
	}
	if b := c.Int("generation-batch"); b < 0 {
		return fmt.Errorf("%s: --generation-batch %d must be ≥ 0 (0: %d on the CPU, %d on a GPU)", cmd, b,
			pipeline.DefaultGenerationBatch, pipeline.DefaultGPUGenerationBatch)
	}
	return ranked(c, cmd, func(group train.Collective, quiet bool) error {
		if quiet {
			out = io.Discard // rank 0 reports for all
		}
		return generateRank(c, cmd, adapterDir, heldOut, group, out)
	})
}

// generateRank is runGenerate's work in one process (all of it, or one rank's share).
func generateRank(c *cli.Context, cmd, adapterDir string, heldOut []string, group train.Collective, out io.Writer) error {
	_, err := pipeline.Evaluate(pipeline.EvalOptions{ModelOptions: modelOptions(c), Adapter: adapterDir, Group: group,
		DataDir: c.String("data-dir"), OutputDir: c.String("output-dir"), RunName: c.String("run-name"),
		Limit: c.Int("limit"), MaxLen: c.Int("max-len"), MaxNewTokens: c.Int("max-new-tokens"),
		HeldOutCollections: heldOut, Batch: c.Int("generation-batch"), Overwrite: c.Bool("overwrite"),
		CommandLine: commandLine(), Log: out,
		WatchInterrupts: func() (<-chan struct{}, func()) {
			return notifyInterrupts(out, "interrupted: stopping generation before its next step; the unfinished split's report is not written (interrupt again to abort)")
		},
		OnSplit: func(s pipeline.SplitResult) {
			fmt.Fprintf(out, "\n%s / %s\n\n%s", s.RunName, s.Split, eval.FormatReport(s.Report))
			fmt.Fprintf(out, "wrote %s and %s\n\n", s.PredictionsFile, s.ReportFile)
		}})
	var stopped *pipeline.EvalInterrupted
	if errors.As(err, &stopped) {
		return cli.Exit(fmt.Sprintf("t2m %s: %v", cmd, err), 130)
	}
	return err
}

// notifyInterrupts makes the first SIGINT or SIGTERM close stop after which it prints msg (stop first, so
// whoever reads the message may rely on the run having been told); a second one kills the process as
// usual. done stops watching.
func notifyInterrupts(out io.Writer, msg string) (stop <-chan struct{}, done func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	stopc := make(chan struct{})
	go func() {
		if _, ok := <-sig; ok {
			close(stopc)
			signal.Reset(os.Interrupt, syscall.SIGTERM)
			fmt.Fprintln(out, "\n"+msg)
		}
	}()
	return stopc, func() { signal.Stop(sig); close(sig) }
}
