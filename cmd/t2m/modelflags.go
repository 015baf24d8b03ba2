package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// modelFlags are the flags shared by baseline, train and eval (the seed's flags).
func modelFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "model", Value: "qwen2.5-coder-7b", Usage: "model name from the registry (qwen2.5-coder-7b, tiny) or a directory with config.json + safetensors"},
		&cli.IntFlag{Name: "lora-r", Value: 8, Usage: "LoRA rank"},
		&cli.Float64Flag{Name: "lora-alpha", Value: 0, Usage: "LoRA alpha (0 means 2×r)"},
		&cli.IntFlag{Name: "epochs", Value: 3, Usage: "training epochs"},
		&cli.IntFlag{Name: "batch-size", Value: 4, Usage: "micro-batch size"},
		&cli.IntFlag{Name: "grad-accum", Value: 4, Usage: "gradient accumulation steps"},
		&cli.Float64Flag{Name: "lr", Value: 2e-4, Usage: "peak learning rate"},
		&cli.IntFlag{Name: "max-len", Value: 512, Usage: "maximum tokens per example (prompt + completion)"},
		&cli.StringFlag{Name: "adapter", Usage: "directory of a PEFT LoRA adapter to load"},
		&cli.StringFlag{Name: "run-name", Usage: "name of the run folder under --output-dir (default <model>_r<rank>)"},
		&cli.StringFlag{Name: "data-dir", Value: "data", Usage: "folder with train.jsonl, eval.jsonl, held_out.jsonl"},
		&cli.StringFlag{Name: "output-dir", Value: "runs", Usage: "folder for run outputs"},
		&cli.StringFlag{Name: "device", Value: "auto", Usage: "auto|cpu|cuda"},
		&cli.IntFlag{Name: "seed", Value: 42, Usage: "random seed"},
	}
}

// checkRunName refuses run names that would escape the output folder.
func checkRunName(name string) error {
	if name == "" {
		return nil
	}
	if strings.ContainsAny(name, `/\`) || strings.Contains(name, "..") {
		return fmt.Errorf("run name %q must not contain '/', '\\' or '..'", name)
	}
	return nil
}

// notYet is the error of commands whose model backend has not landed yet.
func notYet(cmd, what string) error {
	return cli.Exit(fmt.Sprintf("t2m %s: not available yet: %s", cmd, what), 2)
}

func baselineCommand() *cli.Command {
	return &cli.Command{
		Name:      "baseline",
		Usage:     "evaluate the base model zero-shot on the eval and held-out splits",
		UsageText: "t2m baseline --model qwen2.5-coder-7b --data-dir data",
		Flags:     modelFlags(),
		Action: func(c *cli.Context) error {
			if err := checkRunName(c.String("run-name")); err != nil {
				return err
			}
			return notYet("baseline", "generation with the Qwen2 model (issues 3 and 4) has not landed")
		},
	}
}

func trainCommand() *cli.Command {
	return &cli.Command{
		Name:      "train",
		Usage:     "QLoRA fine-tune the model on train.jsonl, save a PEFT adapter",
		UsageText: "t2m train --model qwen2.5-coder-7b --lora-r 8 --epochs 3 --run-name r8",
		Flags:     modelFlags(),
		Action: func(c *cli.Context) error {
			if err := checkRunName(c.String("run-name")); err != nil {
				return err
			}
			return notYet("train", "the training loop on the Qwen2 model (issues 3 and 4) has not landed")
		},
	}
}

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:      "eval",
		Usage:     "evaluate a fine-tuned adapter on the eval and held-out splits",
		UsageText: "t2m eval --model qwen2.5-coder-7b --adapter runs/r8/adapter --run-name r8",
		Flags:     modelFlags(),
		Action: func(c *cli.Context) error {
			if err := checkRunName(c.String("run-name")); err != nil {
				return err
			}
			return notYet("eval", "generation with the Qwen2 model (issues 3 and 4) has not landed")
		},
	}
}
