package gpu

import "fmt"

// NF4Levels are bitsandbytes' 16 NormalFloat4 values (the table in kernels/nf4.cu).
var NF4Levels = [16]float32{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

// NF4Host is an NF4 double-quantized matrix in host memory, in the bitsandbytes layout that quant/ writes:
// W[e] = NF4[code(e)] · (Code2[Absmax[e/BlockSize]] · Absmax2[e/BlockSize/BlockSize2] + Offset), code(e)
// the high nibble of Codes[e/2] for even e, the low nibble for odd e.
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

// DequantNF4CPU is the CPU twin of the kernel nf4_dequant_bf16, before the bf16 rounding: [Rows*Cols] float32.
// The absmax is dequantized in float32 as bitsandbytes does (multiply, round, add the offset, round).
func DequantNF4CPU(h *NF4Host) ([]float32, error) {
	if err := h.Check(); err != nil {
		return nil, err
	}
	n := h.Rows * h.Cols
	out := make([]float32, n)
	for e := range out {
		blk := e / h.BlockSize
		// The conversion keeps the compiler from fusing multiply and add (bitsandbytes rounds both).
		scale := float32(h.Code2[h.Absmax[blk]]*h.Absmax2[blk/h.BlockSize2]) + h.Offset
		c := h.Codes[e/2] >> 4
		if e%2 == 1 {
			c = h.Codes[e/2] & 0xf
		}
		out[e] = NF4Levels[c] * scale
	}
	return out, nil
}
