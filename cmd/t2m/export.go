package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/t2m/t2m/pipeline"
)

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "export a (merged) model as a GGUF file for llama.cpp and ollama",
		UsageText: "t2m export --model merged/r8 --gguf r8.gguf --type q8_0\n" +
			"t2m export --model tiny --adapter runs/tiny_r8/adapter --tokenizer ../shared/tokenizers/qwen2.5/tokenizer.json --gguf /tmp/tiny.gguf",
		Description: "Writes a GGUF v3 file: Qwen2 architecture metadata, the weights under llama.cpp's tensor names\n" +
			"(matrices in --type, norms and biases in f32), the tokenizer (tokens, token types, merges,\n" +
			"bos/eos/padding ids) and the ChatML chat template. --model is usually t2m merge's output; with\n" +
			"--adapter the adapter is merged in memory first. The file is written atomically.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "gguf", Required: true, Usage: "GGUF file to write"},
			&cli.StringFlag{Name: "model", Required: true, Usage: "model directory (config.json + bf16/f32 safetensors + tokenizer.json) or a registry name (tiny)"},
			&cli.StringFlag{Name: "adapter", Usage: "PEFT LoRA adapter to merge in first"},
			&cli.StringFlag{Name: "tokenizer", Usage: "tokenizer.json to embed (default: the model directory's)"},
			&cli.StringFlag{Name: "type", Value: "bf16", Usage: "bf16|q8_0|f32: type of the weight matrices"},
			&cli.StringFlag{Name: "name", Usage: "general.name of the model (default: the model's base name)"},
		},
		Action: func(c *cli.Context) error {
			res, err := pipeline.ExportGGUF(pipeline.ExportOptions{Model: c.String("model"), Adapter: c.String("adapter"),
				Tokenizer: c.String("tokenizer"), Out: c.String("gguf"), Type: c.String("type"), Name: c.String("name")})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "wrote %s: %d tensors (%s), %d tokens, %.1f MB\n", res.Path, res.Tensors, c.String("type"),
				res.Tokens, float64(res.Bytes)/1e6)
			return nil
		},
	}
}
