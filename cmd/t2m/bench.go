package main

import (
	"fmt"

	"github.com/t2m/t2m/gpu"
	"github.com/urfave/cli/v2"
)

// benchCommand is `t2m bench`: speed measurements on the GPU (the cuda build only).
func benchCommand() *cli.Command {
	def := gpu.Qwen7BBench()
	return &cli.Command{
		Name:  "bench",
		Usage: "measure training speed on the GPU (needs the CUDA build: make build-cuda)",
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
				Usage: "time QLoRA training steps of a Qwen2.5-Coder-7B-shaped model with random NF4 weights " +
					"made on the GPU (no checkpoint needed)",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "batch", Value: def.Batch, Usage: "sequences per step (B)"},
					&cli.IntFlag{Name: "seq", Value: def.Seq, Usage: "tokens per sequence (T)"},
					&cli.IntFlag{Name: "layers", Value: def.Layers, Usage: "decoder layers (28 in the 7B model)"},
					&cli.IntFlag{Name: "rank", Value: def.Rank, Usage: "LoRA rank on q,k,v,o,gate,up"},
					&cli.IntFlag{Name: "vocab", Value: def.Vocab, Usage: "vocabulary size (lm_head rows)"},
					&cli.IntFlag{Name: "warmup", Value: def.Warmup, Usage: "untimed steps first"},
					&cli.IntFlag{Name: "steps", Value: def.Steps, Usage: "timed steps (the median is reported)"},
					&cli.BoolFlag{Name: "overlap", Value: def.Overlap,
						Usage: "dequantize the next NF4 weight on a second stream during the current GEMM (full scope)"},
					&cli.StringFlag{Name: "scope", Value: def.Scope,
						Usage: "full (a hand-written whole step: forward, backward, AdamW), gemm (NF4 dequant and GEMMs " +
							"only) or machine (the model graph through the GPU machine; weights made on the CPU, so use " +
							"few --layers and a small --vocab)"},
				},
				Action: func(c *cli.Context) error {
					cfg := def
					cfg.Batch, cfg.Seq, cfg.Layers = c.Int("batch"), c.Int("seq"), c.Int("layers")
					cfg.Rank, cfg.Warmup, cfg.Steps = c.Int("rank"), c.Int("warmup"), c.Int("steps")
					cfg.Overlap, cfg.Vocab = c.Bool("overlap"), c.Int("vocab")
					if cfg.Scope = c.String("scope"); cfg.Scope != "full" && cfg.Scope != "gemm" && cfg.Scope != "machine" {
						return fmt.Errorf("bench train: --scope %q: want full, gemm or machine", cfg.Scope)
					}
					if cfg.Batch < 1 || cfg.Seq < 4 || cfg.Layers < 1 || cfg.Rank < 1 || cfg.Steps < 1 || cfg.Warmup < 0 {
						return fmt.Errorf("bench train: batch, seq (≥ 4), layers, rank and steps must be positive")
					}
					b, err := gpu.Get()
					if err != nil {
						return err
					}
					r, err := b.BenchTrain(cfg, c.App.ErrWriter)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "t2m bench train (%s, overlap %v): B=%d T=%d layers=%d r=%d hidden=%d inter=%d vocab=%d\n",
						cfg.Scope, cfg.Overlap, cfg.Batch, cfg.Seq, cfg.Layers, cfg.Rank, cfg.Hidden, cfg.Intermediate, cfg.Vocab)
					r.Print(c.App.Writer)
					return nil
				},
			},
		},
	}
}
