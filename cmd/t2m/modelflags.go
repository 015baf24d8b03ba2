package main

import (
	"github.com/urfave/cli/v2"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/pipeline"
)

// modelFlags are the flags shared by baseline, train and eval (the seed's flags, plus t2m's).
func modelFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "model", Value: "qwen2.5-coder-7b", Usage: "model name from the registry (qwen2.5-coder-7b, tiny) or a directory with config.json + safetensors"},
		&cli.IntFlag{Name: "lora-r", Value: 8, Usage: "LoRA rank"},
		&cli.Float64Flag{Name: "lora-alpha", Value: 0, Usage: "LoRA alpha (0 means 2×r)"},
		&cli.IntFlag{Name: "epochs", Value: 3, Usage: "training epochs"},
		&cli.IntFlag{Name: "batch-size", Value: 4, Usage: "micro-batch size"},
		&cli.IntFlag{Name: "grad-accum", Value: 4, Usage: "gradient accumulation steps"},
		&cli.Float64Flag{Name: "lr", Value: 2e-4, Usage: "peak learning rate"},
		&cli.IntFlag{Name: "max-len", Value: data.DefaultMaxLen, Usage: "maximum tokens per training example (prompt + completion) and per generation prompt"},
		&cli.StringFlag{Name: "adapter", Usage: "directory of a PEFT LoRA adapter to load"},
		&cli.StringFlag{Name: "run-name", Usage: "name of the run folder under --output-dir (default <model>_r<rank>; baseline: <model>_baseline)"},
		&cli.StringFlag{Name: "data-dir", Value: "data", Usage: "folder with train.jsonl, eval.jsonl, held_out.jsonl"},
		&cli.StringFlag{Name: "output-dir", Value: "runs", Usage: "folder for run outputs"},
		&cli.StringFlag{Name: "device", Value: "auto", Usage: "auto|cpu|cuda (auto: cuda when this binary has a GPU backend and a GPU is present, else cpu)"},
		&cli.IntFlag{Name: "seed", Value: 42, Usage: "random seed (LoRA init, shuffling)"},
		&cli.IntFlag{Name: "limit", Usage: "use only the first N examples of each split (quick runs; 0: all)"},
		&cli.StringFlag{Name: "tokenizer", Usage: "tokenizer.json to use (default: DIR/tokenizer.json for a model directory, the built-in byte tokenizer for tiny)"},
		&cli.StringFlag{Name: "quantize", Value: "auto", Usage: "auto|none|nf4: NF4 base projections (QLoRA); auto is nf4 for a model directory, none for built-in models"},
	}
}

// checkRunName refuses run names that would escape the output folder (pipeline.CheckRunName).
func checkRunName(name string) error { return pipeline.CheckRunName(name) }

// modelOptions converts --model, --device, --quantize and --tokenizer.
func modelOptions(c *cli.Context) pipeline.ModelOptions {
	return pipeline.ModelOptions{Model: c.String("model"), Device: c.String("device"), Quantize: c.String("quantize"),
		Tokenizer: c.String("tokenizer")}
}
