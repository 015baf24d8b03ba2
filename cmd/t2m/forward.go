package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/pipeline"
	"github.com/t2m/t2m/safetensors"
)

func forwardCommand() *cli.Command {
	return &cli.Command{
		Name:  "forward",
		Usage: "run the model on token ids and write its float32 logits [B, T, V] to a safetensors file",
		UsageText: "t2m forward --model-dir ~/models/Qwen2.5-Coder-7B-Instruct --adapter runs/r8/adapter --quantize nf4 \\\n" +
			"    --ids '151644,8948,198;151644,872,198' --out logits.safetensors\n" +
			"t2m forward --model tiny --ids 1,2,3 --out tiny.safetensors",
		Description: "Runs one forward pass on the CPU (positions 0..T-1, no padding) and writes the tensor\n" +
			"\"logits\" (F32 [B, T, V]). It exists so t2m can be checked against another implementation,\n" +
			"e.g. transformers + PEFT (scripts/fixtures/check_peft_load.py).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model-dir", Usage: "directory with config.json and model.safetensors (or shards + model.safetensors.index.json)"},
			&cli.StringFlag{Name: "model", Usage: "registered model name (" + strings.Join(model.RegisteredNames(), ", ") + "); tiny needs no files"},
			&cli.StringFlag{Name: "adapter", Usage: "directory of a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors)"},
			&cli.StringFlag{Name: "quantize", Value: "none", Usage: "none|nf4: quantize the seven projections of every layer to NF4 at load"},
			&cli.IntFlag{Name: "seed", Value: 0, Usage: "seed of a built-in model's random weights (0: the registry's)"},
			&cli.StringFlag{Name: "ids", Required: true, Usage: "token ids: comma-separated, batch rows separated by ';', rows of equal length"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "output .safetensors file (written atomically)"},
		},
		Action: runForward,
	}
}

func runForward(c *cli.Context) error {
	batch, seq, ids, err := parseIDs(c.String("ids"))
	if err != nil {
		return fmt.Errorf("forward: --ids: %v", err)
	}
	if err := checkOutFile(c.String("out")); err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	opt := model.LoadOptions{}
	switch q := c.String("quantize"); q {
	case "none":
	case "nf4":
		opt.Quantize = model.QuantizeNF4
	default:
		return fmt.Errorf("forward: --quantize %q: want none or nf4", q)
	}
	w, source, err := pipeline.LoadWeights(c.String("model-dir"), c.String("model"), c.Int64("seed"), opt)
	if err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	for i, id := range ids {
		if int(id) >= w.Config.VocabSize {
			return fmt.Errorf("forward: --ids: id %d (row %d, position %d) is outside the vocabulary of %s [0, %d)",
				id, i/seq+1, i%seq+1, source, w.Config.VocabSize)
		}
	}
	var lora *model.LoRAParams
	meta := map[string]string{"model": source, "quantize": c.String("quantize")}
	if dir := c.String("adapter"); dir != "" {
		if lora, err = model.LoadAdapter(dir, w.Config); err != nil {
			return fmt.Errorf("forward: %w", err)
		}
		meta["adapter"] = dir
	}
	logits, err := model.Logits(w, lora, ids, batch, seq)
	if err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	out := c.String("out")
	t := safetensors.Tensor{Name: "logits", DType: safetensors.F32, Shape: []int{batch, seq, w.Config.VocabSize},
		Data: safetensors.F32Bytes(logits)}
	if err := safetensors.Write(out, []safetensors.Tensor{t}, meta); err != nil {
		return fmt.Errorf("forward: writing %s: %v", out, err)
	}
	fmt.Fprintf(c.App.Writer, "wrote logits [%d %d %d] to %s\n", batch, seq, w.Config.VocabSize, out)
	return nil
}

// parseIDs reads "1,2,3;4,5,6" into B rows of T ids (row-major).
func parseIDs(s string) (batch, seq int, ids []int32, err error) {
	rows := strings.Split(strings.TrimSpace(s), ";")
	for r, row := range rows {
		row = strings.TrimSpace(row)
		if row == "" {
			return 0, 0, nil, fmt.Errorf("row %d is empty (want e.g. 1,2,3;4,5,6)", r+1)
		}
		fields := strings.Split(row, ",")
		if r == 0 {
			seq = len(fields)
		} else if len(fields) != seq {
			return 0, 0, nil, fmt.Errorf("row %d has %d ids, row 1 has %d: rows must have equal lengths", r+1, len(fields), seq)
		}
		for p, f := range fields {
			v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
			if err != nil || v < 0 {
				return 0, 0, nil, fmt.Errorf("row %d, position %d: %q is not a token id (a non-negative integer)", r+1, p+1, f)
			}
			ids = append(ids, int32(v))
		}
	}
	return len(rows), seq, ids, nil
}

// checkOutFile refuses an --out that cannot become a file: an existing folder (the logits would otherwise
// be renamed over it, or fail deep inside the write) or a path whose folder does not exist.
func checkOutFile(out string) error {
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return fmt.Errorf("--out %s is a folder: give a file name, e.g. %s", out, filepath.Join(out, "logits.safetensors"))
	}
	if st, err := os.Stat(filepath.Dir(out)); err != nil || !st.IsDir() {
		return fmt.Errorf("--out %s: folder %s does not exist: create it first", out, filepath.Dir(out))
	}
	return nil
}
