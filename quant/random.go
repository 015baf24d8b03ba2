package quant

import (
	"fmt"

	"github.com/t2m/t2m/internal/rng"
)

// Random makes an NF4 double-quantized [out, in] weight with uniformly random codes and block absmax in
// [scale/2, scale), in parallel, without a float32 matrix: a 7B model's projections take about a second
// on a few cores. It is for benchmarks and size tests, which need the real layout, not trained values.
func Random(shape []int, seed uint64, scale float32) (*Weight, error) {
	n := elements(shape)
	if len(shape) != 2 || n <= 0 || !(scale > 0) {
		return nil, fmt.Errorf("quant: random weight of shape %v and scale %g: want [out, in] > 0 and scale > 0", shape, scale)
	}
	nblocks := (n + BlockSize - 1) / BlockSize
	w := &Weight{Shape: append([]int(nil), shape...), Codes: make([]byte, (n+1)/2), QuantMap: NF4,
		BlockSize: BlockSize, DType: "bfloat16", Nested: true, NestedMap: DynamicMap, NestedBlockSize: NestedBlockSize}
	const chunk = 1 << 20 // code bytes per task
	parallel((len(w.Codes)+chunk-1)/chunk, func(c int) {
		lo := c * chunk
		for i := lo; i < min(lo+chunk, len(w.Codes)); i++ {
			w.Codes[i] = byte(rng.SplitMix64(seed ^ uint64(i)))
		}
	})
	absmax := make([]float32, nblocks) // [nblocks]
	for b := range absmax {
		u := float32(rng.SplitMix64(^seed^uint64(b))>>40) / (1 << 24) // [0, 1)
		absmax[b] = scale * (0.5 + 0.5*u)
	}
	w.doubleQuantize(absmax)
	return w, nil
}
