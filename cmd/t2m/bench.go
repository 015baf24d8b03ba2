package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/t2m/t2m/bench"
	"github.com/t2m/t2m/gpu"
	"github.com/t2m/t2m/train"
)

// benchCommand is `t2m bench`: speed of the real training and generation paths on random weights.
func benchCommand() *cli.Command {
	shapeFlags := func() []cli.Flag {
		return []cli.Flag{
			&cli.StringFlag{Name: "model", Value: "qwen2.5-coder-7b", Usage: "registered model whose shape is used (weights are random NF4)"},
			&cli.IntFlag{Name: "layers", Usage: "decoder layers (0: the model's; 28 in the 7B)"},
			&cli.IntFlag{Name: "vocab", Usage: "vocabulary size (0: the model's)"},
			&cli.StringFlag{Name: "device", Value: "cuda", Usage: "cuda (the CUDA build) or cpu (use a small --model)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the random weights and tokens"},
		}
	}
	shape := func(c *cli.Context) bench.Shape {
		return bench.Shape{Model: c.String("model"), Layers: c.Int("layers"), Vocab: c.Int("vocab"), Seed: c.Uint64("seed")}
	}
	return &cli.Command{
		Name:  "bench",
		Usage: "time the training and generation paths of t2m train and t2m eval on random weights",
		Description: "Each configuration prints one JSON line, like the anchor scripts in ../shared/bench, so the two can\n" +
			"be put side by side (run both in the same call on the same GPU). The weights are random NF4 of the\n" +
			"named model's shape, made in about a second; no checkpoint is needed. Progress goes to stderr.",
		Subcommands: []*cli.Command{
			{
				Name:  "gpu",
				Usage: "open the first GPU and describe it",
				Action: func(c *cli.Context) error {
					b, err := gpu.Get()
					if err != nil {
						return err
					}
					s, err := b.Describe()
					if err != nil {
						return err
					}
					fmt.Fprintln(c.App.Writer, s)
					return nil
				},
			},
			{
				Name: "train",
				Usage: "time training updates (forward + backward of each micro-batch, clipping, AdamW) on the backend " +
					"t2m train uses",
				UsageText: "t2m bench train                      # 7B shape, B=4, T=512, grad-accum 4, r=8\n" +
					"t2m bench train --device cpu --model tiny --seq 64 --updates 2",
				Flags: append(shapeFlags(),
					&cli.IntFlag{Name: "batch", Value: 4, Usage: "sequences per micro-batch (B)"},
					&cli.IntFlag{Name: "seq", Value: 512, Usage: "tokens per sequence (T)"},
					&cli.IntFlag{Name: "grad-accum", Value: 4, Usage: "micro-batches per update"},
					&cli.IntFlag{Name: "rank", Value: 8, Usage: "LoRA rank on q,k,v,o,gate,up"},
					&cli.Float64Flag{Name: "loss-frac", Value: 0.3, Usage: "fraction of each sequence (its end) with labels"},
					&cli.IntFlag{Name: "warmup", Value: 1, Usage: "untimed updates first"},
					&cli.IntFlag{Name: "updates", Value: 3, Usage: "timed updates (the median is reported)"},
					&cli.BoolFlag{Name: "host-optimizer", Usage: "sum gradients, clip and run AdamW on the host (t2m train runs them on the GPU)"},
					&cli.BoolFlag{Name: "gradient-checkpointing", Usage: "recompute each layer's activations in the backward (t2m train --gradient-checkpointing)"},
					&cli.BoolFlag{Name: "pack", Usage: "run each micro-batch's B sequences packed into one row [1, B·T], as t2m train does on the GPU"},
					&cli.Float64Flag{Name: "weight-cache-gib", Value: train.DefaultWeightCacheGiB, Usage: "bf16 copies of NF4 weights kept on the GPU (t2m train --weight-cache-gib; 0: off)"},
					&cli.BoolFlag{Name: "profile", Usage: "after the timed updates, time one micro-batch's launches on the GPU by kind of op (profile_ms in the JSON, a table on stderr)"},
				),
				Action: func(c *cli.Context) error {
					_, err := bench.Train(bench.TrainOptions{Shape: shape(c), Device: c.String("device"), Batch: c.Int("batch"),
						Seq: c.Int("seq"), GradAccum: c.Int("grad-accum"), Rank: c.Int("rank"), LossFrac: c.Float64("loss-frac"),
						Warmup: c.Int("warmup"), Updates: c.Int("updates"), HostOptimizer: c.Bool("host-optimizer"),
						Recompute: c.Bool("gradient-checkpointing"), Profile: c.Bool("profile"), WeightCacheGiB: c.Float64("weight-cache-gib"),
						Pack: c.Bool("pack"), Log: c.App.ErrWriter}, c.App.Writer)
					return err
				},
			},
			{
				Name:  "generate",
				Usage: "time greedy generation on the generator t2m baseline and t2m eval use",
				UsageText: "t2m bench generate                   # 7B shape, prompt 400, 64 new tokens, batch 1, 8, 32\n" +
					"t2m bench generate --device cpu --model tiny --batches 1,4 --prompt 32 --new 8",
				Description: "Per batch size one JSON line: s and new_tok_per_s for a whole generation (the median of --repeats),\n" +
					"first_token_s for the same prompts generating one token (the prefill: time to first token), and\n" +
					"step_ms, the rest per later token (one decode step of that many rows).",
				Flags: append(shapeFlags(),
					&cli.StringFlag{Name: "batches", Value: "1,8,32", Usage: "comma-separated batch sizes"},
					&cli.IntFlag{Name: "prompt", Value: 400, Usage: "prompt tokens (random ids)"},
					&cli.IntFlag{Name: "new", Value: 64, Usage: "new tokens per prompt (exactly: no stop ids)"},
					&cli.IntFlag{Name: "repeats", Value: 3, Usage: "timed generations per batch size (the median is reported)"},
					&cli.IntFlag{Name: "lora-rank", Usage: "give every projection a random adapter of this rank, as t2m eval of a trained adapter has (0: none)"},
					&cli.StringFlag{Name: "anchor", Usage: "then run this anchor script (../shared/bench/hf_generate_anchor.py) with the same batches, prompt and new tokens, and print its lines and the ratios"},
					&cli.BoolFlag{Name: "anchor-compile", Usage: "with --anchor: run it a second time with --compile (static cache, compiled decoding step; compiles for minutes)"},
					&cli.StringFlag{Name: "python", Value: "python3", Usage: "the interpreter of --anchor"},
					&cli.BoolFlag{Name: "profile", Usage: "after each batch size's timed generations, time one more with every op of the decode steps timed on the GPU (step_profile_ms in the JSON, a table on stderr)"},
				),
				Action: func(c *cli.Context) error {
					var batches []int
					for _, s := range strings.Split(c.String("batches"), ",") {
						b, err := strconv.Atoi(strings.TrimSpace(s))
						if err != nil || b < 1 {
							return fmt.Errorf("bench generate: --batches %q: want positive integers separated by commas", c.String("batches"))
						}
						batches = append(batches, b)
					}
					if c.Bool("anchor-compile") && c.String("anchor") == "" {
						return fmt.Errorf("bench generate: --anchor-compile needs --anchor SCRIPT")
					}
					res, err := bench.Generate(bench.GenerateOptions{Shape: shape(c), Device: c.String("device"), Batches: batches,
						Prompt: c.Int("prompt"), New: c.Int("new"), Repeats: c.Int("repeats"), LoRARank: c.Int("lora-rank"),
						Profile: c.Bool("profile"), Log: c.App.ErrWriter}, c.App.Writer)
					if err != nil || c.String("anchor") == "" {
						return err
					}
					args := []string{"--batches", c.String("batches"), "--prompt", strconv.Itoa(c.Int("prompt")), "--new", strconv.Itoa(c.Int("new"))}
					runs := [][]string{args}
					if c.Bool("anchor-compile") {
						runs = append(runs, append(append([]string{}, args...), "--compile"))
					}
					for _, a := range runs {
						lines, err := bench.RunAnchor(c.String("python"), c.String("anchor"), a, c.App.Writer, c.App.ErrWriter)
						if err != nil {
							return err
						}
						if _, err := bench.Ratios(res, lines, c.App.Writer); err != nil {
							return err
						}
					}
					return nil
				},
			},
		},
	}
}
