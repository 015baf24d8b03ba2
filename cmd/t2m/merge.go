package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/t2m/t2m/pipeline"
)

func mergeCommand() *cli.Command {
	return &cli.Command{
		Name:  "merge",
		Usage: "merge a LoRA adapter into its base model: a Hugging Face model directory (bf16 safetensors)",
		UsageText: "t2m merge --model ~/models/Qwen2.5-Coder-7B-Instruct --adapter runs/r8/adapter --out merged/r8\n" +
			"t2m merge --model tiny --adapter runs/tiny_r8/adapter --tokenizer ../shared/tokenizers/qwen2.5/tokenizer.json --out /tmp/tiny-merged",
		Description: "Folds the PEFT adapter into the base model's original bf16/f32 weights (W' = W + alpha/r·B·A, in\n" +
			"float32, rounded once to bf16; an NF4 or bnb-4bit checkpoint is refused) and writes a directory that\n" +
			"transformers loads without PEFT: model-0000i-of-0000n.safetensors (bf16) with\n" +
			"model.safetensors.index.json, config.json and the tokenizer files. --out is replaced atomically.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Required: true, Usage: "base model: a directory with config.json + safetensors, or a registry name (tiny)"},
			&cli.StringFlag{Name: "adapter", Required: true, Usage: "PEFT LoRA adapter directory"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "merged model directory to write"},
			&cli.StringFlag{Name: "tokenizer", Usage: "tokenizer.json to copy (default: the model directory's tokenizer files)"},
			&cli.Int64Flag{Name: "max-shard-mb", Value: pipeline.DefaultShardBytes / 1_000_000, Usage: "largest safetensors shard, in MB"},
		},
		Action: runMerge,
	}
}

func runMerge(c *cli.Context) error {
	if c.Int64("max-shard-mb") <= 0 {
		return fmt.Errorf("merge: --max-shard-mb %d: want a positive size", c.Int64("max-shard-mb"))
	}
	res, err := pipeline.Merge(pipeline.MergeOptions{Model: c.String("model"), Adapter: c.String("adapter"),
		Tokenizer: c.String("tokenizer"), Out: c.String("out"), ShardBytes: c.Int64("max-shard-mb") * 1_000_000})
	if err != nil {
		return err
	}
	out := c.App.Writer
	fmt.Fprintf(out, "merged %s (r %d, scaling %g) into %s: %d tensors, %.1f MB of bf16 in %d shard(s)\n",
		c.String("adapter"), res.Rank, res.Scaling, res.Dir, res.Tensors, float64(res.Bytes)/1e6, len(res.Shards))
	if len(res.Copied) > 0 {
		fmt.Fprintf(out, "copied %s\n", strings.Join(res.Copied, ", "))
	}
	if !slices.Contains(res.Copied, "tokenizer.json") {
		fmt.Fprintln(out, "warning: no tokenizer.json copied (pass --tokenizer FILE): transformers and t2m export need one")
	}
	return nil
}
