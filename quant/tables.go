package quant

import (
	"math"
	"sort"
)

// NF4 is bitsandbytes' 16-value NormalFloat4 table (quantiles of N(0,1) scaled to
// [-1, 1], with an exact zero): t2m's one Go copy of it (gpu uses it too); the GPU's
// copy is kNF4Levels in kernels/nf4.cu.
var NF4 = [16]float32{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

// nf4Mid are the 15 decision thresholds of bitsandbytes' NF4 quantizer (the
// constants of its dQuantizeNF4 tree), nearly but not exactly the float32 midpoints of
// NF4: x > nf4Mid[i] picks a code above i. Kept verbatim so that codes match
// bitsandbytes' even within an ulp of a threshold.
var nf4Mid = [15]float32{
	-0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
	-0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
	0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
	0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
}

// NF4Thresholds returns the 15 decision thresholds of the NF4 quantizer (nf4Mid), for tests that put values
// on them (the GPU quantizer's parity test).
func NF4Thresholds() [15]float32 { return nf4Mid }

// nf4Code is the index of the NF4 value nearest to x (x already divided by the block
// absmax): the number of midpoints strictly below x, so an exact tie goes to the lower
// code and NaN (an all-zero block, 0·(1/0)) gives code 0 — both as in bitsandbytes.
func nf4Code(x float32) byte {
	// Binary search over the 15 sorted midpoints: 4 comparisons.
	lo, hi := 0, 15 // answer in [lo, hi]
	for lo < hi {
		mid := (lo + hi) / 2
		if x > nf4Mid[mid] {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return byte(lo)
}

// nf4LUT maps x ∈ [-1, 1] in cells of 2/nf4Cells to its code, or -1 where a cell
// (widened by lutMargin, more than the rounding of (x+1)·nf4Cells/2) holds a
// threshold and nf4Code must decide. Quantizing then costs one load per element
// instead of four unpredictable branches.
const (
	nf4Cells  = 8192
	lutMargin = 1e-6
)

var nf4LUT = func() (lut [nf4Cells + 1]int8) {
	for i := range lut {
		lo := float32(-1 + 2*float64(i)/nf4Cells - lutMargin)
		hi := float32(-1 + 2*float64(i+1)/nf4Cells + lutMargin)
		if a, b := nf4Code(lo), nf4Code(hi); a == b {
			lut[i] = int8(a)
		} else {
			lut[i] = -1
		}
	}
	return lut
}()

// nf4CodeFast is nf4Code through nf4LUT.
func nf4CodeFast(x float32) byte {
	if x != x || x < -1 || x > 1 { // NaN, or rounding past ±1
		return nf4Code(x)
	}
	if c := nf4LUT[int((x+1)*(nf4Cells/2))]; c >= 0 {
		return byte(c)
	}
	return nf4Code(x)
}

// fma32 is a·b + c rounded once to float32, like the FMA instructions of torch's
// compiled CPU kernels (the float64 FMA is exact here: a·b of two float32 needs 48
// bits and c lies within a few binades of it).
func fma32(a, b, c float32) float32 {
	return float32(math.FMA(float64(a), float64(b), float64(c)))
}

// torchLinspace reproduces torch.linspace(start, end, n, dtype=float32) on the CPU as
// torch 2.11 computes it on x86-64: step = (end−start)/(n−1), element i is
// fma(step, i, start) below n/2 and fma(−step, n−1−i, end) from there. (Bit for bit
// against torch in TestDynamicMapMatchesTorch; older torch builds computed vector
// lanes as base + k·step, which changes a few last bits of the map.)
func torchLinspace(start, end float32, n int) []float32 {
	out := make([]float32, n)
	if n == 1 {
		out[0] = start
		return out
	}
	step := (end - start) / float32(n-1)
	for i := range out {
		if i < n/2 {
			out[i] = fma32(step, float32(i), start)
		} else {
			out[i] = fma32(-step, float32(n-1-i), end)
		}
	}
	return out
}

// dynamicMap builds create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
// for exponents e = 0..6, the 2^e midpoints of linspace(0.1, 1, 2^e+1) scaled by
// 10^(e−6), with both signs; then 0 and 1; sorted.
func dynamicMap() [256]float32 {
	const maxExp = 7
	data := make([]float32, 0, 256)
	for e := 0; e < maxExp; e++ {
		b := torchLinspace(0.1, 1, 1<<e+1)
		scale := float32(math.Pow10(e - (maxExp - 1))) // Python's 10**k, then float32
		var pos, neg []float32
		for j := 0; j+1 < len(b); j++ {
			mean := (b[j] + b[j+1]) / 2
			pos = append(pos, scale*mean)
			neg = append(neg, -scale*mean)
		}
		data = append(append(data, pos...), neg...)
	}
	data = append(data, 0, 1)
	sort.Slice(data, func(i, j int) bool { return data[i] < data[j] })
	var m [256]float32
	copy(m[:], data)
	return m
}

// DynamicMap is bitsandbytes' signed 8-bit dynamic map (256 sorted values,
// [0] = −0.99296875, [127] = 0, [254] = 0.99296875, [255] = 1), the code of the
// double-quantized absmax.
var DynamicMap = dynamicMap()

// dynCode quantizes x (already divided by its block's absmax) to an index into code,
// as bitsandbytes' blockwise quantizer does: a 7-step binary search from pivot 127
// brackets x between the last pivot below it and the last one above it, then x goes
// to the bracket end on its side of the pivot if it lies strictly beyond the float32
// midpoint, else to the pivot. NaN gives 0.
func dynCode(code *[256]float32, x float32) byte {
	p, lower, upper := 127, 0, 255
	for step := 64; step > 0; step >>= 1 {
		if x > code[p] {
			lower = p
			p += step
		} else {
			upper = p
			p -= step
		}
	}
	v := code[p]
	if x > v {
		if x > (code[upper]+v)*0.5 {
			return byte(upper)
		}
		return byte(p)
	}
	if x < (code[lower]+v)*0.5 {
		return byte(lower)
	}
	return byte(p)
}
