package quant

import "fmt"

// BlockAbsmax gives the effective absmax of every block: for nested statistics
// dyn[q[b]] × nested_absmax[b/NestedBlockSize] + offset, each step rounded to float32
// as bitsandbytes' dequantize_blockwise and the following add do.
func (w *Weight) BlockAbsmax() []float32 {
	if !w.Nested {
		return append([]float32(nil), w.Absmax...)
	}
	out := make([]float32, len(w.QAbsmax)) // [nblocks]
	for b := range out {
		out[b] = w.blockAbsmax(b)
	}
	return out
}

// Dequantize returns the whole matrix as row-major float32 ([out, in]), in parallel.
func (w *Weight) Dequantize() []float32 {
	dst := make([]float32, w.NumElements()) // [out*in]
	abs := w.BlockAbsmax()                  // [nblocks]
	chunk := chunkBlocks * w.BlockSize
	parallel((len(dst)+chunk-1)/chunk, func(c int) {
		lo, hi := c*chunk, min((c+1)*chunk, len(dst))
		w.dequantRange(lo, dst[lo:hi], abs[lo/w.BlockSize:])
	})
	return dst
}

// DequantizeRows writes rows [r0, r1) of the [out, in] matrix into dst, which must hold
// (r1−r0)·in values: for streaming a large matrix through a small buffer.
func (w *Weight) DequantizeRows(r0, r1 int, dst []float32) error {
	if len(w.Shape) != 2 {
		return fmt.Errorf("dequantize rows: weight shape %v is not [out, in]", w.Shape)
	}
	out, in := w.Shape[0], w.Shape[1]
	if r0 < 0 || r1 > out || r0 > r1 {
		return fmt.Errorf("dequantize rows [%d, %d) of a %d-row weight", r0, r1, out)
	}
	if len(dst) != (r1-r0)*in {
		return fmt.Errorf("dequantize rows [%d, %d): dst holds %d values, want %d", r0, r1, len(dst), (r1-r0)*in)
	}
	lo := r0 * in
	if len(dst) == 0 {
		return nil
	}
	b0, b1 := lo/w.BlockSize, (lo+len(dst)-1)/w.BlockSize+1
	abs := make([]float32, b1-b0) // [blocks covering the rows]
	for b := b0; b < b1; b++ {
		abs[b-b0] = w.blockAbsmax(b)
	}
	w.dequantRange(lo, dst, abs)
	return nil
}

func (w *Weight) blockAbsmax(b int) float32 {
	// The explicit float32 conversion keeps the compiler from fusing into an FMA.
	if !w.Nested {
		return w.Absmax[b]
	}
	return float32(w.NestedMap[w.QAbsmax[b]]*w.NestedAbsmax[b/w.NestedBlockSize]) + w.Offset
}

// dequantRange writes elements [lo, lo+len(dst)) into dst; abs[k] is the absmax of
// block lo/BlockSize + k. Each block's 16 products NF4[c]·absmax are formed once
// (the same float32 products as element by element) and looked up per code.
func (w *Weight) dequantRange(lo int, dst []float32, abs []float32) {
	b0 := lo / w.BlockSize
	hi := lo + len(dst)
	var scaled [16]float32
	for e := lo; e < hi; {
		b := e / w.BlockSize
		end := min((b+1)*w.BlockSize, hi) // this block's part of the range
		for c, v := range w.QuantMap {
			scaled[c] = v * abs[b-b0]
		}
		if e&1 == 1 { // odd start: low nibble of a shared byte
			dst[e-lo] = scaled[w.Codes[e/2]&0x0f]
			e++
		}
		for ; e+1 < end; e += 2 {
			c := w.Codes[e/2]
			dst[e-lo] = scaled[c>>4]
			dst[e+1-lo] = scaled[c&0x0f]
		}
		if e < end { // odd end
			dst[e-lo] = scaled[w.Codes[e/2]>>4]
			e++
		}
	}
}
