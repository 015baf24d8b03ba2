package pipeline

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/tokenizer"
)

// ModelOptions say which model a run loads and where it runs (t2m's --model, --device, --quantize and
// --tokenizer).
type ModelOptions struct {
	// Model is a registry name (model.RegisteredNames: tiny has built-in random weights) or a directory
	// with config.json and safetensors.
	Model string
	// Device is auto, cpu or cuda ("" is auto); see ResolveDevice.
	Device string
	// Quantize is auto, none or nf4 ("" is auto): NF4 base projections (QLoRA). auto is nf4 for a model
	// directory and none for built-in models.
	Quantize string
	// Tokenizer is a tokenizer.json; "" means DIR/tokenizer.json for a model directory and the built-in
	// byte tokenizer for a registry model.
	Tokenizer string
	// Log, when set, receives the loading's progress (not a flag: the command's log).
	Log io.Writer
}

// Model is what a run loads: weights, tokenizer and the device they run on.
type Model struct {
	Name    string // short name for run names: the registry name or the directory's base name
	Source  string // Hugging Face repository or directory (adapter_config.json's base_model_name_or_path)
	Weights *model.Weights
	Tok     *tokenizer.Tokenizer
	Device  string // a registered device: "cpu" or "cuda"
	Quant   string // "none" or "nf4"
	// Loaded says how the weights were read and how long it took ("nf4, quantized on the GPU, 9.1 s").
	Loaded string
}

// LoadModel resolves opts for a run of cmd ("train", "baseline" or "eval": it names the run in messages,
// and train needs a device that trains, the others one that generates) and loads the model. The device
// is decided before the weights are read, so a refused run costs nothing.
func LoadModel(opts ModelOptions, cmd string) (*Model, error) {
	name := opts.Model
	m := &Model{Name: name, Source: name}
	var cfg model.Config
	var reg model.Registered
	dir := ""
	if st, err := os.Stat(filepath.Join(name, "config.json")); err == nil && !st.IsDir() {
		dir = name
		m.Name, m.Source = filepath.Base(filepath.Clean(name)), filepath.Clean(name)
		if cfg, err = model.LoadConfig(dir); err != nil {
			return nil, err
		}
	} else {
		if reg, err = model.Lookup(name); err != nil {
			return nil, fmt.Errorf("--model: %w", err)
		}
		if reg.HFRepo != "" {
			return nil, fmt.Errorf("--model %s has no built-in weights: download %s (e.g. `huggingface-cli download %s --local-dir DIR`) and pass --model DIR",
				name, reg.HFRepo, reg.HFRepo)
		}
		cfg = reg.Config
	}
	var err error
	if m.Device, err = ResolveDevice(opts.Device, cmd, m.Name, cfg); err != nil {
		return nil, err
	}
	switch q := opts.Quantize; q {
	case "auto", "":
		m.Quant = "none"
		if dir != "" {
			m.Quant = "nf4"
		}
	case "none", "nf4":
		m.Quant = q
	default:
		return nil, fmt.Errorf("--quantize %q: want auto, none or nf4", q)
	}
	if m.Tok, err = loadTokenizer(opts.Tokenizer, dir); err != nil {
		return nil, err
	}
	if m.Tok.VocabSize() > cfg.VocabSize {
		return nil, fmt.Errorf("tokenizer has %d ids but model %s has a vocabulary of %d: they do not belong together", m.Tok.VocabSize(), m.Name, cfg.VocabSize)
	}
	// On a GPU the embedding and lm_head stay bf16 on the host when the checkpoint has them so: the GPU
	// uploads them as they are, and the host holds half the bytes.
	lo := model.LoadOptions{Log: opts.Log, BF16Tables: m.Device == "cuda"}
	began := time.Now()
	how := "unquantized"
	if m.Quant == "nf4" {
		how = "nf4, quantized on the host"
		lo.Quantize = model.QuantizeNF4
		// On a GPU the projections are quantized there as they are read (the same bytes, much sooner);
		// T2M_GPU_QUANTIZE=0 keeps the host's quantizer.
		if dev, ok := lookupDevice(m.Device); ok && dev.NewQuantizer != nil && os.Getenv("T2M_GPU_QUANTIZE") != "0" {
			q, closeQ, err := dev.NewQuantizer()
			if err != nil {
				return nil, err
			}
			defer closeQ()
			lo.Quantize = q
			how = "nf4, quantized on the GPU"
		}
	}
	if dir != "" {
		m.Weights, err = model.LoadDir(dir, lo)
	} else {
		m.Weights, err = model.RandomWeights(reg.Config, reg.Seed, lo)
	}
	if err != nil {
		return nil, err
	}
	m.Loaded = fmt.Sprintf("%s, %s", how, time.Since(began).Round(100*time.Millisecond))
	return m, nil
}

// loadTokenizer reads path, or dir's tokenizer.json when path is "" and the model is a directory, or
// gives the built-in byte tokenizer.
func loadTokenizer(path, dir string) (*tokenizer.Tokenizer, error) {
	if path == "" && dir != "" {
		path = filepath.Join(dir, "tokenizer.json")
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("model directory %s has no tokenizer.json: pass --tokenizer FILE", dir)
		}
	}
	if path == "" {
		return tokenizer.Bytes(), nil
	}
	tok, err := tokenizer.Load(path)
	if err != nil {
		return nil, err
	}
	if err := tok.RequireAdded(tokenizer.ImStart, tokenizer.ImEnd, tokenizer.EndOfText); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tok, nil
}

// withLog is o with the loading's progress going to log.
func withLog(o ModelOptions, log io.Writer) ModelOptions {
	o.Log = log
	return o
}
