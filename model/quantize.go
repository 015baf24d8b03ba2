package model

import (
	"fmt"
	"slices"

	"github.com/t2m/t2m/quant"
	"github.com/t2m/t2m/safetensors"
)

// QuantizeNF4 is the QuantizeFunc of --quantize nf4: blockwise NF4 (blocks of 64) with double-quantized
// absmax in the bitsandbytes layout, computed straight from the checkpoint bytes (quant.QuantizeRaw).
func QuantizeNF4(name string, dt safetensors.DType, raw []byte, shape []int) (Quantized, error) {
	w, err := quant.QuantizeRaw(name, dt, raw, shape)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// loadBNB reads a projection stored pre-quantized by bitsandbytes (bnb-4bit checkpoints), reporting
// false when the checkpoint holds it unquantized.
func (ld *loader) loadBNB(name string, out, in int) (Quantized, bool, error) {
	if !quant.IsBNB(ld.r, name) {
		return nil, false, nil
	}
	w, err := quant.LoadBNB(ld.r, name)
	if err != nil {
		return nil, true, fmt.Errorf("checkpoint %s: %w", ld.file, err)
	}
	if !slices.Equal(w.Shape, []int{out, in}) {
		return nil, true, fmt.Errorf("checkpoint %s: tensor %s is quantized with shape %v, the config says [%d %d]", ld.file, name, w.Shape, out, in)
	}
	return w, true, nil
}
