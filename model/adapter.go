package model

import (
	"fmt"
	"strings"

	"github.com/t2m/t2m/lora"
)

// peftPrefix is what PEFT puts before a module path of the base model.
const peftPrefix = "base_model.model."

// LoRADims gives lora.New and lora.Load the [out, in] sizes of each projection of this model.
func (c Config) LoRADims() lora.Dims {
	return func(layer int, module string) (in, out int, ok bool) {
		if layer < 0 || layer >= c.NumLayers {
			return 0, 0, false
		}
		for _, s := range projSpecs(c) {
			if s.module[strings.LastIndexByte(s.module, '.')+1:] == module {
				return s.in, s.out, true
			}
		}
		return 0, 0, false
	}
}

// LoRAFromAdapter exposes an adapter's matrices to the graph, keyed by the base model's module path
// (PEFT's path without "base_model.model."). The slices are shared, not copied.
func LoRAFromAdapter(a *lora.Adapter) (*LoRAParams, error) {
	p := &LoRAParams{Rank: a.Config.R, Scaling: float32(a.Config.Scaling()),
		A: map[string][]float32{}, B: map[string][]float32{}}
	for path, pair := range a.Pairs {
		module, ok := strings.CutPrefix(path, peftPrefix)
		if !ok {
			return nil, fmt.Errorf("adapter module %q does not start with %q", path, peftPrefix)
		}
		p.A[module], p.B[module] = pair.A, pair.B // [r, in], [out, r]
	}
	return p, nil
}

// LoadAdapter reads a PEFT LoRA adapter directory for this model (lora.Load, shapes checked against cfg).
func LoadAdapter(dir string, cfg Config) (*LoRAParams, error) {
	a, err := lora.Load(dir, cfg.LoRADims())
	if err != nil {
		return nil, fmt.Errorf("loading adapter %s: %w", dir, err)
	}
	return LoRAFromAdapter(a)
}
