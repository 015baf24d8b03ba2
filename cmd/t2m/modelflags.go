package main

import (
	"fmt"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/pipeline"
)

// runFlags are the flags of every command that runs a model over the splits (baseline, eval, train):
// which model, where it runs, which data, where the run folder goes. Each command adds only the flags it
// uses: modelFlags for baseline and eval, trainFlags for train.
func runFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "model", Value: "qwen2.5-coder-7b", Usage: "model name from the registry (qwen2.5-coder-7b, tiny) or a directory with config.json + safetensors"},
		&cli.StringFlag{Name: "tokenizer", Usage: "tokenizer.json to use (default: DIR/tokenizer.json for a model directory; for tiny $" + pipeline.TokenizerEnv + ", else --data-dir's tokenizer.json, else the built-in byte tokenizer)"},
		&cli.StringFlag{Name: "quantize", Value: "auto", Usage: "auto|none|nf4: NF4 base projections (QLoRA); auto is nf4 for a model directory, none for built-in models"},
		&cli.StringFlag{Name: "device", Value: "auto", Usage: "auto|cpu|cuda (auto: cuda when this binary has a GPU backend and a GPU is present, else cpu)"},
		&cli.StringFlag{Name: "data-dir", Value: "data", Usage: "folder with train.jsonl, eval.jsonl, held_out.jsonl"},
		&cli.StringFlag{Name: "output-dir", Value: "runs", Usage: "folder for run outputs"},
		&cli.StringFlag{Name: "run-name", Usage: "name of the run folder under --output-dir (default <model>_r<rank>; baseline: <model>_baseline)"},
		&cli.IntFlag{Name: "limit", Usage: "use only the first N examples of each split (quick runs; 0: all)"},
		&cli.IntFlag{Name: "max-len", Value: data.DefaultMaxLen, Usage: fmt.Sprintf("maximum tokens per training example (prompt + completion) and per generation prompt (%d when not given and the tokenizer is the built-in byte one)", pipeline.ByteMaxLen)},
	}
}

// modelFlags are eval's flags: runFlags and --adapter (baseline takes runFlags alone).
// They hold no training flag, so `t2m eval --epochs 3` is a usage error.
func modelFlags() []cli.Flag {
	return append(runFlags(),
		&cli.StringFlag{Name: "adapter", Usage: "directory of a PEFT LoRA adapter to apply (eval)"})
}

// checkRunName refuses run names that would escape the output folder (pipeline.CheckRunName).
func checkRunName(name string) error { return pipeline.CheckRunName(name) }

// resolveModel converts --model, --device, --quantize and --tokenizer and decides the tokenizer with
// pipeline.FindTokenizer (--tokenizer; a model directory's own; for a built-in model $T2M_TOKENIZER,
// --data-dir's tokenizer.json, or the built-in byte tokenizer). With the byte tokenizer and no --max-len
// given (on the command line or in a recipe), it sets --max-len to pipeline.ByteMaxLen, so that the
// command's later reads of --max-len see the value the run uses.
func resolveModel(c *cli.Context) (pipeline.ModelOptions, pipeline.TokenizerChoice) {
	mo := pipeline.ModelOptions{Model: c.String("model"), Device: c.String("device"), Quantize: c.String("quantize"),
		Tokenizer: c.String("tokenizer")}
	tok := pipeline.FindTokenizer(mo, c.String("data-dir"))
	if tok.From != "the model directory" { // LoadModel reads a directory's own, with its own message when missing
		mo.Tokenizer = tok.Path
	}
	if tok.Bytes() && !c.IsSet("max-len") {
		_ = c.Set("max-len", strconv.Itoa(pipeline.ByteMaxLen)) // defined on every command that calls this
	}
	return mo, tok
}

// modelOptions is resolveModel's ModelOptions (baseline and eval): call it before reading --max-len.
func modelOptions(c *cli.Context) pipeline.ModelOptions {
	mo, _ := resolveModel(c)
	return mo
}
