package ops

import (
	"fmt"

	"github.com/t2m/t2m/quant"
)

// NF4HostFromQuant views a quant.Weight (t2m's own quantization, or a loaded bnb-4bit checkpoint) as an
// NF4Host for upload. The kernel handles double-quantized statistics with the standard NF4 table only.
func NF4HostFromQuant(w *quant.Weight) (*NF4Host, error) {
	if len(w.Shape) != 2 {
		return nil, fmt.Errorf("nf4: weight shape %v is not [out, in]", w.Shape)
	}
	if !w.Nested {
		return nil, fmt.Errorf("nf4: weight %v has no double-quantized statistics; the GPU kernel needs them", w.Shape)
	}
	if w.QuantMap != quant.NF4 {
		return nil, fmt.Errorf("nf4: weight %v has a quantization map other than NF4 (FP4?); the GPU kernel has NF4 only",
			w.Shape)
	}
	h := &NF4Host{Rows: w.Shape[0], Cols: w.Shape[1], Codes: w.Codes, Absmax: w.QAbsmax, Code2: w.NestedMap,
		Absmax2: w.NestedAbsmax, Offset: w.Offset, BlockSize: w.BlockSize, BlockSize2: w.NestedBlockSize}
	if err := h.Check(); err != nil {
		return nil, err
	}
	return h, nil
}
