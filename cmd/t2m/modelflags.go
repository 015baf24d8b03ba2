package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/gpu"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/tokenizer"
	"github.com/t2m/t2m/train"
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

// cpuParamLimit is the size above which a model is not run on the CPU unless --device cpu says so.
const cpuParamLimit = 1e9

// loadedModel is what baseline, train and eval share: weights, tokenizer and where they run.
type loadedModel struct {
	Name    string // short name for run names: the registry name or the directory's base name
	Source  string // Hugging Face repository or directory (adapter_config.json's base_model_name_or_path)
	Weights *model.Weights
	Tok     *tokenizer.Tokenizer
	Device  string // "cpu" or "cuda"
	Quant   string // "none" or "nf4"
}

// numParams estimates a config's parameter count (projections, embeddings, lm_head).
func numParams(c model.Config) float64 {
	H, I := float64(c.HiddenSize), float64(c.IntermediateSize)
	layer := H*float64(c.QDim()) + 2*H*float64(c.KVDim()) + float64(c.QDim())*H + 3*H*I
	return float64(c.NumLayers)*layer + 2*float64(c.VocabSize)*H
}

// loadForCommand resolves --model, --device, --quantize and --tokenizer. The device is decided before
// the weights are read, so a refused run costs nothing.
func loadForCommand(c *cli.Context, cmd string) (*loadedModel, error) {
	name := c.String("model")
	lm := &loadedModel{Name: name, Source: name}
	var cfg model.Config
	dir := ""
	if st, err := os.Stat(filepath.Join(name, "config.json")); err == nil && !st.IsDir() {
		dir = name
		lm.Name, lm.Source = filepath.Base(filepath.Clean(name)), filepath.Clean(name)
		if cfg, err = model.LoadConfig(dir); err != nil {
			return nil, err
		}
	} else {
		reg, err := model.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("--model: %w", err)
		}
		if reg.HFRepo != "" {
			return nil, fmt.Errorf("--model %s has no built-in weights: download %s (e.g. `huggingface-cli download %s --local-dir DIR`) and pass --model DIR",
				name, reg.HFRepo, reg.HFRepo)
		}
		cfg = reg.Config
	}
	var err error
	if lm.Device, err = resolveDevice(c.String("device"), cmd, lm.Name, cfg); err != nil {
		return nil, err
	}
	switch q := c.String("quantize"); q {
	case "auto":
		lm.Quant = "none"
		if dir != "" {
			lm.Quant = "nf4"
		}
	case "none", "nf4":
		lm.Quant = q
	default:
		return nil, fmt.Errorf("--quantize %q: want auto, none or nf4", q)
	}
	tokPath := c.String("tokenizer")
	if tokPath == "" && dir != "" {
		tokPath = filepath.Join(dir, "tokenizer.json")
		if _, err := os.Stat(tokPath); err != nil {
			return nil, fmt.Errorf("model directory %s has no tokenizer.json: pass --tokenizer FILE", dir)
		}
	}
	if tokPath != "" {
		if lm.Tok, err = tokenizer.Load(tokPath); err != nil {
			return nil, err
		}
	} else {
		lm.Tok = tokenizer.Bytes()
	}
	if lm.Tok.VocabSize() > cfg.VocabSize {
		return nil, fmt.Errorf("tokenizer has %d ids but model %s has a vocabulary of %d: they do not belong together", lm.Tok.VocabSize(), lm.Name, cfg.VocabSize)
	}
	opt := model.LoadOptions{}
	if lm.Quant == "nf4" {
		opt.Quantize = model.QuantizeNF4
	}
	if lm.Weights, _, err = loadModel(dir, map[bool]string{true: "", false: name}[dir != ""], 0, opt); err != nil {
		return nil, err
	}
	return lm, nil
}

// hasGPUPath says whether this binary has a GPU path for a command: train needs the "cuda" train.Backend,
// baseline and eval the GPU backend's generator (both registered by the CUDA build).
func hasGPUPath(cmd string) bool {
	if cmd == "train" {
		_, ok := train.LookupBackend("cuda")
		return ok
	}
	_, err := gpu.Get()
	return err == nil
}

// resolveDevice applies --device: cuda needs the command's GPU path in this binary and a usable GPU; auto
// picks them when both are there and otherwise the CPU, except for a model too large for it (then
// --device cpu must be explicit).
func resolveDevice(flag, cmd, name string, cfg model.Config) (string, error) {
	hasCUDA := hasGPUPath(cmd)
	gpuErr := gpu.ErrNoCUDA
	if hasCUDA && (flag == "cuda" || flag == "auto") {
		if b, err := gpu.Get(); err != nil {
			gpuErr = err
		} else {
			_, gpuErr = b.Describe()
		}
	}
	switch flag {
	case "cpu":
		return "cpu", nil
	case "cuda":
		if !hasCUDA {
			return "", fmt.Errorf("--device cuda: this t2m binary has no GPU backend for %s (the CPU build: build bin/t2m-cuda with make build-cuda): use --device cpu", cmd)
		}
		if gpuErr != nil {
			return "", fmt.Errorf("--device cuda: %w", gpuErr)
		}
		return "cuda", nil
	case "auto":
		if hasCUDA && gpuErr == nil {
			return "cuda", nil
		}
		if n := numParams(cfg); n > cpuParamLimit {
			return "", fmt.Errorf("--device auto: no usable GPU backend (%v), and %s (%.1fB parameters) on the CPU would take days: run t2m %s with the CUDA build on a GPU machine, or pass --device cpu to run it on the CPU anyway",
				gpuErr, name, n/1e9, cmd)
		}
		return "cpu", nil
	}
	return "", fmt.Errorf("--device %q: want auto, cpu or cuda", flag)
}

// readSplit reads DIR/<split>.jsonl, keeping the first limit examples when limit > 0.
func readSplit(dir, split string, limit int) ([]data.Example, string, error) {
	path := filepath.Join(dir, split+".jsonl")
	if _, err := os.Stat(path); err != nil {
		return nil, path, fmt.Errorf("%s split: %s not found: generate the splits with `t2m data --out %s` or pass --data-dir", split, path, dir)
	}
	exs, err := data.ReadExamples(path)
	if err != nil {
		return nil, path, err
	}
	if limit > 0 && len(exs) > limit {
		exs = exs[:limit]
	}
	if len(exs) == 0 {
		return nil, path, fmt.Errorf("%s has no examples", path)
	}
	return exs, path, nil
}
