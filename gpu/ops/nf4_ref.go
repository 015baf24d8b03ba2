package ops

import "fmt"

// NF4Host is an NF4 double-quantized matrix in host memory, in the bitsandbytes layout that quant/ writes:
// W[e] = quant.NF4[code(e)] · (Code2[Absmax[e/BlockSize]] · Absmax2[e/BlockSize/BlockSize2] + Offset), code(e)
// the high nibble of Codes[e/2] for even e, the low nibble for odd e. It is what UploadNF4 copies to the
// device; the NF4 table and the CPU dequantizer (the kernel's twin) are quant's: NF4HostFromQuant makes an
// NF4Host from a quant.Weight, and (*quant.Weight).Dequantize computes what nf4_dequant_bf16 computes before
// its bf16 rounding.
type NF4Host struct {
	Rows, Cols int          // the dequantized weight is [Rows, Cols]
	Codes      []byte       // [Rows*Cols/2]
	Absmax     []byte       // [ceil(Rows*Cols/BlockSize)] indices into Code2
	Code2      [256]float32 // bitsandbytes' dynamic map
	Absmax2    []float32    // [ceil(len(Absmax)/BlockSize2)]
	Offset     float32
	BlockSize  int // 64 in bitsandbytes' QLoRA default
	BlockSize2 int // 256
}

// Check validates the sizes of h's arrays against its shape.
func (h *NF4Host) Check() error {
	n := h.Rows * h.Cols
	switch {
	case h.Rows <= 0 || h.Cols <= 0 || n%2 != 0:
		return fmt.Errorf("nf4: shape [%d, %d] (need a positive, even element count)", h.Rows, h.Cols)
	case h.BlockSize <= 0 || h.BlockSize%16 != 0:
		return fmt.Errorf("nf4: block size %d (need a positive multiple of 16)", h.BlockSize)
	case h.BlockSize2 <= 0:
		return fmt.Errorf("nf4: nested block size %d", h.BlockSize2)
	case len(h.Codes) != n/2:
		return fmt.Errorf("nf4: %d code bytes for [%d, %d], want %d", len(h.Codes), h.Rows, h.Cols, n/2)
	case len(h.Absmax) != ceilDiv(n, h.BlockSize):
		return fmt.Errorf("nf4: %d absmax bytes, want %d", len(h.Absmax), ceilDiv(n, h.BlockSize))
	case len(h.Absmax2) != ceilDiv(len(h.Absmax), h.BlockSize2):
		return fmt.Errorf("nf4: %d nested absmax values, want %d", len(h.Absmax2), ceilDiv(len(h.Absmax), h.BlockSize2))
	}
	return nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
