// Command nf4base writes a copy of a Hugging Face Qwen2 checkpoint whose seven projections of every layer
// (q, k, v, o, gate, up, down) went through t2m's NF4 quantizer and back: each is quantized as `t2m train
// --quantize nf4` quantizes it (quant.QuantizeRaw, which model.QuantizeNF4 calls: blocks of 64,
// double-quantized absmax), dequantized
// (quant.Weight.Dequantize) and stored as bf16. Every other tensor is copied byte for byte, and so are the
// directory's other files (config.json, tokenizer files).
//
// Issue 12's experiment uses it to tell the two differences between t2m's QLoRA row and HF PEFT's row apart:
// HF PEFT fine-tunes the bf16 base (bitsandbytes is not on the GPU machine), t2m the NF4 one. HF PEFT on
// this copy trains over the weights t2m's NF4 training multiplies by.
//
//	go run ./scripts/experiment/nf4base --in /tmp/t2m-exp/t2m-small-base --out /tmp/t2m-exp/base-nf4
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/t2m/t2m/quant"
	"github.com/t2m/t2m/safetensors"
)

// projection matches the weights t2m quantizes (model.LoadOptions.Quantize: the seven projections).
var projection = regexp.MustCompile(`^model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)\.weight$`)

func main() {
	in := flag.String("in", "", "checkpoint directory to read (config.json + model.safetensors)")
	out := flag.String("out", "", "directory to write (created; its model.safetensors is replaced)")
	flag.Parse()
	if *in == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: nf4base --in BASE_DIR --out DIR")
		os.Exit(2)
	}
	n, err := run(*in, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nf4base:", err)
		os.Exit(1)
	}
	fmt.Printf("nf4base: %d projections through NF4 and back, written to %s\n", n, *out)
}

// run writes out from in and returns how many projections it round-tripped.
func run(in, out string) (int, error) {
	r, err := safetensors.OpenDir(in)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	var tensors []safetensors.Tensor
	n := 0
	for _, name := range r.Names() {
		info, err := r.Info(name)
		if err != nil {
			return 0, err
		}
		raw, err := r.Raw(name)
		if err != nil {
			return 0, err
		}
		if !projection.MatchString(name) {
			tensors = append(tensors, safetensors.Tensor{Name: name, DType: info.DType, Shape: info.Shape, Data: append([]byte(nil), raw...)})
			continue
		}
		q, err := quant.QuantizeRaw(name, info.DType, raw, info.Shape)
		if err != nil {
			return 0, err
		}
		tensors = append(tensors, safetensors.BF16Tensor(name, info.Shape, q.Dequantize()))
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("%s has no Qwen2 projection weights (model.layers.N.self_attn.q_proj.weight, …)", in)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(in)
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == safetensors.SingleFile || name == safetensors.IndexFile || filepath.Ext(name) == ".safetensors" {
			continue
		}
		if err := copyFile(filepath.Join(in, name), filepath.Join(out, name)); err != nil {
			return 0, err
		}
	}
	return n, safetensors.Write(filepath.Join(out, safetensors.SingleFile), tensors, map[string]string{"format": "pt"})
}

func copyFile(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return safetensors.WriteFileAtomic(dst, func(w io.Writer) error {
		_, err := io.Copy(w, f)
		return err
	})
}
