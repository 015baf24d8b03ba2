package quant

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/t2m/t2m/safetensors"
)

// Block sizes of t2m's quantization (bitsandbytes' QLoRA defaults).
const (
	BlockSize       = 64  // elements per NF4 absmax block
	NestedBlockSize = 256 // absmax values per double-quantization block
)

// Weight is one NF4 double-quantized matrix in the bitsandbytes layout. With nested
// statistics (always, for t2m's own quantization) the per-block absmax is QAbsmax +
// NestedAbsmax + Offset; a checkpoint quantized without them has Absmax instead.
type Weight struct {
	Shape           []int        // [out, in]
	Codes           []byte       // [(n+1)/2] two NF4 codes per byte, element 2j in the high nibble
	QuantMap        [16]float32  // the NF4 values (read from the file when loaded)
	BlockSize       int          // elements per absmax block (64)
	DType           string       // dtype of the original weight: "bfloat16", "float16", "float32"
	Nested          bool         // double-quantized statistics
	QAbsmax         []byte       // [nblocks] indices into NestedMap (Nested)
	NestedAbsmax    []float32    // [ceil(nblocks/NestedBlock)] (Nested)
	NestedMap       [256]float32 // the dynamic map (Nested)
	NestedBlockSize int          // absmax values per nested block (256)
	Offset          float32      // mean of the absmax (Nested)
	Absmax          []float32    // [nblocks] float32 absmax (not Nested)
}

// NumElements is the number of weight elements.
func (w *Weight) NumElements() int {
	n := 1
	for _, d := range w.Shape {
		n *= d
	}
	return n
}

// NumBlocks is the number of absmax blocks.
func (w *Weight) NumBlocks() int { return (w.NumElements() + w.BlockSize - 1) / w.BlockSize }

// source fills dst with elements [lo, lo+len(dst)) of the weight, as float32.
type source func(lo int, dst []float32) error

// Quantize quantizes a row-major float32 matrix of the given shape ([out, in]) to NF4
// with double quantization, in parallel over the available cores. Non-finite values
// are an error.
func Quantize(w []float32, shape []int) (*Weight, error) {
	if n := elements(shape); n != len(w) {
		return nil, fmt.Errorf("quantize: shape %v has %d elements, got %d values", shape, n, len(w))
	}
	return quantize(shape, "float32", func(lo int, dst []float32) error {
		copy(dst, w[lo:])
		return nil
	})
}

// DTypeName is Weight.DType for a checkpoint dtype: "bfloat16", "float16" or "float32" (the original
// weight's torch dtype, which bitsandbytes records); other dtypes cannot be quantized.
func DTypeName(dt safetensors.DType) (string, error) {
	switch dt {
	case safetensors.BF16:
		return "bfloat16", nil
	case safetensors.F16:
		return "float16", nil
	case safetensors.F32:
		return "float32", nil
	}
	return "", fmt.Errorf("dtype %s is not F32, BF16 or F16", dt)
}

// QuantizeRaw quantizes a little-endian F32, BF16 or F16 tensor straight from its bytes
// (for example a memory-mapped checkpoint tensor), without a float32 copy of the whole
// matrix. name appears in errors.
func QuantizeRaw(name string, dt safetensors.DType, raw []byte, shape []int) (*Weight, error) {
	size, err := dt.Size()
	if err != nil {
		return nil, fmt.Errorf("quantize %s: %w", name, err)
	}
	n := elements(shape)
	if len(raw) != n*size {
		return nil, fmt.Errorf("quantize %s: %s %v needs %d bytes, got %d", name, dt, shape, n*size, len(raw))
	}
	dtName, err := DTypeName(dt)
	if err != nil {
		return nil, fmt.Errorf("quantize %s: %w", name, err)
	}
	w, err := quantize(shape, dtName, func(lo int, dst []float32) error {
		return safetensors.DecodeFloat32(dt, raw[lo*size:(lo+len(dst))*size], dst)
	})
	if err != nil {
		return nil, fmt.Errorf("quantize %s: %w", name, err)
	}
	return w, nil
}

func elements(shape []int) int {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return -1
		}
		n *= d
	}
	return n
}

// chunkBlocks is how many 64-blocks one worker task quantizes.
const chunkBlocks = 1024

// chunkBufs holds the float32 chunks quantize converts into, reused: a fresh 256 KiB chunk per task made
// ~1 GB of garbage per 7B layer, which the collector let pile up to the size of the model being built
// (the peak RSS of loading the 7B on the CPU was 11.8 GiB for about 8 GiB kept).
var chunkBufs = sync.Pool{New: func() any {
	b := make([]float32, chunkBlocks*BlockSize)
	return &b
}}

func quantize(shape []int, dtype string, src source) (*Weight, error) {
	n := elements(shape)
	if len(shape) == 0 || n <= 0 {
		return nil, fmt.Errorf("quantize: bad shape %v", shape)
	}
	nblocks := (n + BlockSize - 1) / BlockSize
	w := &Weight{
		Shape:           append([]int(nil), shape...),
		Codes:           make([]byte, (n+1)/2),
		QuantMap:        NF4,
		BlockSize:       BlockSize,
		DType:           dtype,
		Nested:          true,
		NestedMap:       DynamicMap,
		NestedBlockSize: NestedBlockSize,
	}
	absmax := make([]float32, nblocks) // [nblocks]
	nchunks := (nblocks + chunkBlocks - 1) / chunkBlocks
	errs := make([]error, nchunks)
	parallel(nchunks, func(c int) {
		b0 := c * chunkBlocks
		b1 := min(b0+chunkBlocks, nblocks)
		lo, hi := b0*BlockSize, min(b1*BlockSize, n)
		bp := chunkBufs.Get().(*[]float32)
		defer chunkBufs.Put(bp)
		buf := (*bp)[:hi-lo]
		if err := src(lo, buf); err != nil {
			errs[c] = err
			return
		}
		errs[c] = quantizeBlocks(buf, lo, w.Codes, absmax[b0:b1])
	})
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	w.doubleQuantize(absmax)
	return w, nil
}

// quantizeBlocks quantizes the elements x (starting at element lo, a multiple of
// BlockSize) block by block, storing codes and each block's absmax.
func quantizeBlocks(x []float32, lo int, codes []byte, absmax []float32) error {
	for b := range absmax {
		blk := x[b*BlockSize : min((b+1)*BlockSize, len(x))]
		var m float32
		for i, v := range blk {
			a := float32(math.Abs(float64(v)))
			if !(a <= math.MaxFloat32) { // NaN or ±Inf
				return fmt.Errorf("element %d is %v", lo+b*BlockSize+i, v)
			}
			m = max(m, a)
		}
		absmax[b] = m
		inv := 1 / m                      // +Inf for an all-zero block: codes become 0, as in bitsandbytes
		out := codes[(lo+b*BlockSize)/2:] // blocks start at even elements
		j := 0
		for ; j+1 < len(blk); j += 2 {
			out[j/2] = nf4CodeFast(blk[j]*inv)<<4 | nf4CodeFast(blk[j+1]*inv)
		}
		if j < len(blk) { // odd element count: the last low nibble stays 0
			out[j/2] = nf4CodeFast(blk[j]*inv) << 4
		}
	}
	return nil
}

// doubleQuantize stores absmax as offset + 8-bit dynamic codes with a float32 absmax
// per NestedBlockSize values.
func (w *Weight) doubleQuantize(absmax []float32) {
	var sum float64
	for _, a := range absmax {
		sum += float64(a)
	}
	// The mean in float64, rounded once; bitsandbytes' float32 GPU reduction may differ
	// from it in the last bit, which only shifts what the codes are relative to.
	w.Offset = float32(sum / float64(len(absmax)))
	w.QAbsmax = make([]byte, len(absmax))
	nb := (len(absmax) + NestedBlockSize - 1) / NestedBlockSize
	w.NestedAbsmax = make([]float32, nb) // [nb]
	centered := make([]float32, NestedBlockSize)
	for b := range nb {
		blk := absmax[b*NestedBlockSize : min((b+1)*NestedBlockSize, len(absmax))]
		var m float32
		for i, a := range blk {
			centered[i] = a - w.Offset
			m = max(m, float32(math.Abs(float64(centered[i]))))
		}
		w.NestedAbsmax[b] = m
		inv := 1 / m
		for i := range blk {
			w.QAbsmax[b*NestedBlockSize+i] = dynCode(&w.NestedMap, centered[i]*inv)
		}
	}
}

// parallel runs f(0..n-1) on GOMAXPROCS goroutines.
func parallel(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}
