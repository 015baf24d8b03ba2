//go:build t2mcuda

package ops

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/quant"
	"github.com/t2m/t2m/safetensors"
)

// nf4Thresholds are quant's NF4 decision thresholds, which the tie cases sit on.
var nf4Thresholds = quant.NF4Thresholds()

// nf4QuantCase is one weight for the parity test: [rows, cols] little-endian values of dtype dt.
type nf4QuantCase struct {
	name       string
	dt         safetensors.DType
	rows, cols int
	raw        []byte
}

func bf16Raw(v []uint16) []byte { // [len(v)] bf16 or f16 bits → little-endian bytes
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], x)
	}
	return b
}

// bf16Case makes a bf16 case from float32 values (rounded to nearest even).
func bf16Case(name string, rows, cols int, v []float32) nf4QuantCase {
	return nf4QuantCase{name, safetensors.BF16, rows, cols, bf16Raw(cuda.RoundedBF16(v))}
}

// normalBF16 is a random normal [rows, cols] weight (σ 0.02, like a checkpoint's), in bf16.
func normalBF16(rng *rand.Rand, rows, cols int) nf4QuantCase {
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * 0.02)
	}
	return bf16Case("normal", rows, cols, v)
}

// TestNF4QuantizeParity: the GPU quantizer's codes, absmax codes, nested absmax, dynamic map and offset are
// byte for byte quant.QuantizeRaw's, on bf16, f16 and f32 weights: random normal ones of several shapes (an
// odd element count, counts not a multiple of 64 or of 64·256, 3584×3584), exact zeros (all-zero blocks,
// an all-zero weight, a constant one whose nested absmax is 0), values on and next to the NF4 thresholds,
// magnitudes over the whole exponent range (subnormals, 1/absmax subnormal, absmax spread over 240
// binades so the float64 sum of the offset rounds and its order matters) and random bit patterns.
func TestNF4QuantizeParity(t *testing.T) {
	d := cudatest.Device(t)
	rng := rand.New(rand.NewPCG(21, 22))
	a := cudatest.Arena(t, d, 1<<30)
	var cases []nf4QuantCase
	for _, s := range [][2]int{{7, 10}, {33, 31}, {1, 1}, {96, 200}, {1000, 3584}, {3584, 3584}, {3583, 3584}} {
		cases = append(cases, normalBF16(rng, s[0], s[1]))
	}
	cases = append(cases, zeroCases(rng)...)
	ties, exact := tieCases()
	t.Logf("bf16 tie cases: %d values land exactly on a threshold", exact)
	cases = append(cases, ties...)
	cases = append(cases, wideRangeBF16(rng, 300, 256), randomBits(rng, safetensors.BF16, 257, 300),
		randomBits(rng, safetensors.F16, 255, 301), randomBits(rng, safetensors.F32, 300, 257))
	f32 := make([]float32, 64*1000+3) // odd: quant.Quantize's float32 path too
	for i := range f32 {
		f32[i] = float32(rng.NormFloat64())
	}
	cases = append(cases, nf4QuantCase{"normal f32", safetensors.F32, 1, len(f32), safetensors.F32Bytes(f32)})
	for _, c := range cases {
		mark := a.Mark()
		checkNF4Quantize(t, d, a, c)
		a.Release(mark)
	}
	// quant.Quantize (float32 input) and QuantizeRaw (F32 bytes) are the same quantizer: the GPU matches both.
	want, err := quant.Quantize(f32, []int{1, len(f32)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := quant.QuantizeRaw("f32", safetensors.F32, safetensors.F32Bytes(f32), []int{1, len(f32)})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Codes) != string(want.Codes) || string(got.QAbsmax) != string(want.QAbsmax) ||
		got.Offset != want.Offset {
		t.Errorf("quant.Quantize and QuantizeRaw(F32) differ")
	}
}

// zeroCases: blocks of exact zeros among random ones, scattered zeros, an all-zero weight (every absmax 0,
// offset 0, nested absmax 0) and a constant one (every absmax equal: centered values 0, nested absmax 0).
func zeroCases(rng *rand.Rand) []nf4QuantCase {
	v := make([]float32, 64*700+32)
	for i := range v {
		switch {
		case (i/64)%3 == 1: // every third block all zero
		case rng.IntN(5) == 0: // scattered zeros (and a negative zero now and then)
			v[i] = float32(math.Copysign(0, rng.NormFloat64()))
		default:
			v[i] = float32(rng.NormFloat64() * 0.02)
		}
	}
	constant := make([]float32, 64*300)
	for i := range constant {
		constant[i] = 0.25
		if i%2 == 1 {
			constant[i] = -0.25
		}
	}
	return []nf4QuantCase{bf16Case("zero blocks", 1, len(v), v), bf16Case("all zero", 4, 64, make([]float32, 256)),
		bf16Case("constant", 300, 64, constant)}
}

// tieCases puts values exactly on the NF4 thresholds and one float32 ulp either side (f32, blocks with
// absmax ±1 so that x·(1/absmax) = ±x; an exact tie goes to the lower code), and bf16 values v whose
// v·(1/m) lands on or within two ulps of a threshold, for block absmax m over every bf16 value in [1/256, 1)
// (exact bf16 ties turn out not to exist there: on an H200, 2026-11-30, the log said 0).
// exact counts the bf16 values whose v·(1/m) equals a threshold.
func tieCases() (cases []nf4QuantCase, exact int) {
	var f32 []float32
	for _, scale := range []float32{1, -1} {
		blk := []float32{scale}
		for _, th := range nf4Thresholds {
			blk = append(blk, th, math.Nextafter32(th, 2), math.Nextafter32(th, -2))
		}
		blk = append(blk, quant.NF4[:]...)
		for len(blk) < 64 {
			blk = append(blk, 0)
		}
		f32 = append(f32, blk[:64]...)
	}
	var bf []uint16
	for m := cuda.BF16(1.0 / 256); cuda.F32(m) < 1; m++ {
		mf := cuda.F32(m)
		inv := 1 / mf
		blk := []uint16{m}
		for _, th := range nf4Thresholds {
			v0 := cuda.BF16(th * mf)
			for _, v := range []uint16{v0 - 1, v0, v0 + 1} {
				q := cuda.F32(v) * inv
				if q == th {
					exact++
				}
				if d := math.Abs(float64(q - th)); d <= 2*float64(math.Nextafter32(th, 2)-th) || q == th {
					blk = append(blk, v)
				}
			}
		}
		for len(blk)%64 != 0 {
			blk = append(blk, 0)
		}
		bf = append(bf, blk[:64]...) // at most 64 per m: the block must keep absmax m
	}
	return []nf4QuantCase{{"ties f32", safetensors.F32, 2, 64, safetensors.F32Bytes(f32)},
		{"near ties bf16", safetensors.BF16, len(bf) / 64, 64, bf16Raw(bf)}}, exact
}

// wideRangeBF16 scales each 64-block by 2^k, k uniform in [-120, 120] (and one block of subnormals, one near
// the largest finite values): the offset's float64 sum is inexact, so only the CPU's order reproduces it.
func wideRangeBF16(rng *rand.Rand, rows, cols int) nf4QuantCase {
	v := make([]float32, rows*cols)
	for b := 0; b*64 < len(v); b++ {
		k := rng.IntN(241) - 120
		switch b {
		case 5:
			k = -134 // subnormal bf16 values
		case 9:
			k = 124 // absmax near 2^126: 1/absmax is a float32 subnormal
		}
		for i := b * 64; i < min((b+1)*64, len(v)); i++ {
			v[i] = float32(math.Ldexp(math.Max(-3.9, math.Min(3.9, rng.NormFloat64())), k))
		}
	}
	return bf16Case("wide range", rows, cols, v)
}

// randomBits is a weight of random finite bit patterns of dt (every exponent, subnormals, signed zeros).
func randomBits(rng *rand.Rand, dt safetensors.DType, rows, cols int) nf4QuantCase {
	n := rows * cols
	switch dt {
	case safetensors.F32:
		v := make([]float32, n)
		for i := range v {
			for {
				v[i] = math.Float32frombits(rng.Uint32())
				if !math.IsNaN(float64(v[i])) && !math.IsInf(float64(v[i]), 0) {
					break
				}
			}
		}
		return nf4QuantCase{"random bits f32", dt, rows, cols, safetensors.F32Bytes(v)}
	default:
		expMask := uint16(0x7F80) // bf16
		if dt == safetensors.F16 {
			expMask = 0x7C00
		}
		v := make([]uint16, n)
		for i := range v {
			for {
				v[i] = uint16(rng.Uint32())
				if v[i]&expMask != expMask {
					break
				}
			}
		}
		return nf4QuantCase{"random bits " + string(dt), dt, rows, cols, bf16Raw(v)}
	}
}

// checkNF4Quantize quantizes c on the device (QuantizeNF4 for an even element count, quantizeNF4's bare
// buffers for an odd one) into poisoned buffers and compares every byte with quant.QuantizeRaw.
func checkNF4Quantize(t *testing.T, d *cuda.Device, a *cuda.Arena, c nf4QuantCase) {
	t.Helper()
	name := c.name + " " + string(c.dt)
	shape := []int{c.rows, c.cols}
	want, err := quant.QuantizeRaw(name, c.dt, c.raw, shape)
	if err != nil {
		t.Fatalf("%s %v: CPU: %v", name, shape, err)
	}
	n := int64(c.rows) * int64(c.cols)
	nb := len(want.QAbsmax)
	x, err := a.Alloc(int64(len(c.raw)), "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := cuda.Upload(d, x, c.raw); err != nil {
		t.Fatal(err)
	}
	work, err := a.Alloc(NF4QuantizeWorkBytes(n), "work")
	if err != nil {
		t.Fatal(err)
	}
	var out nf4QuantOut
	var w *NF4Weight
	if n%2 == 0 {
		if w, err = AllocNF4(a, c.rows, c.cols, quant.BlockSize, quant.NestedBlockSize, name); err != nil {
			t.Fatal(err)
		}
		out = nf4QuantOut{Codes: w.Codes, Absmax: w.Absmax, Code2: w.Code2, Absmax2: w.Absmax2}
	} else {
		for _, p := range []struct {
			b     *cuda.Buffer
			bytes int64
		}{{&out.Codes, (n + 1) / 2}, {&out.Absmax, int64(nb)}, {&out.Code2, 1024}, {&out.Absmax2, int64(len(want.NestedAbsmax)) * 4}} {
			if *p.b, err = a.Alloc(p.bytes, name); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, b := range []cuda.Buffer{out.Codes, out.Absmax, out.Code2, out.Absmax2, work} {
		if err := d.Memset(b, 0xA5); err != nil {
			t.Fatal(err)
		}
	}
	var offset float32
	if w != nil {
		err = QuantizeNF4(d, x, c.dt, w, work, name)
		offset = w.Offset
	} else {
		offset, err = quantizeNF4(d, x, c.dt, n, out, work)
	}
	if err != nil {
		t.Fatalf("%s %v: %v", name, shape, err)
	}
	codes := make([]byte, len(want.Codes))
	absmaxQ := make([]byte, nb)
	code2 := make([]float32, 256)
	absmax2 := make([]float32, len(want.NestedAbsmax))
	for _, dl := range []error{cuda.Download(d, codes, out.Codes), cuda.Download(d, absmaxQ, out.Absmax),
		cuda.Download(d, code2, out.Code2), cuda.Download(d, absmax2, out.Absmax2)} {
		if dl != nil {
			t.Fatal(dl)
		}
	}
	if math.Float32bits(offset) != math.Float32bits(want.Offset) {
		t.Errorf("%s %v: offset %g (%#x), CPU %g (%#x)", name, shape, offset, math.Float32bits(offset),
			want.Offset, math.Float32bits(want.Offset))
	}
	for i := range code2 {
		if math.Float32bits(code2[i]) != math.Float32bits(want.NestedMap[i]) {
			t.Fatalf("%s: dynamic map entry %d: %g, CPU %g", name, i, code2[i], want.NestedMap[i])
		}
	}
	for i := range absmax2 {
		if math.Float32bits(absmax2[i]) != math.Float32bits(want.NestedAbsmax[i]) {
			t.Errorf("%s %v: nested absmax %d of %d: %g, CPU %g", name, shape, i, len(absmax2), absmax2[i],
				want.NestedAbsmax[i])
			break
		}
	}
	if bad, first := countDiff(absmaxQ, want.QAbsmax); bad > 0 {
		t.Errorf("%s %v: %d of %d absmax codes differ, first at block %d: %d, CPU %d", name, shape, bad, nb,
			first, absmaxQ[first], want.QAbsmax[first])
	}
	if bad, first := countDiff(codes, want.Codes); bad > 0 {
		size := len(c.raw) / int(n)
		vals := make([]float32, min(2, int(n)-2*first)) // the byte's one or two elements
		_ = safetensors.DecodeFloat32(c.dt, c.raw[2*first*size:(2*first+len(vals))*size], vals)
		t.Errorf("%s %v: %d of %d code bytes differ, first at elements %d, %d (values %v, block %d): %#02x, CPU %#02x",
			name, shape, bad, len(codes), 2*first, 2*first+1, vals, 2*first/quant.BlockSize, codes[first],
			want.Codes[first])
	}
	if !t.Failed() {
		t.Logf("%s %v: identical (%d code bytes, %d blocks, offset %g)", name, shape, len(codes), nb, offset)
	}
}

// countDiff is the number of positions where got and want differ, and the first of them.
func countDiff(got, want []byte) (bad, first int) {
	first = -1
	for i := range want {
		if got[i] != want[i] {
			if bad == 0 {
				first = i
			}
			bad++
		}
	}
	return bad, first
}

// TestNF4QuantizeNonFinite: a NaN or ±Inf element is an error naming the first one, as quant's.
func TestNF4QuantizeNonFinite(t *testing.T) {
	d := cudatest.Device(t)
	a := cudatest.Arena(t, d, 1<<24)
	v := make([]float32, 8*64)
	for i := range v {
		v[i] = float32(i%7) * 0.01
	}
	v[300], v[100], v[50] = float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))
	c := bf16Case("non-finite", 8, 64, v)
	_, cpuErr := quant.QuantizeRaw("w", c.dt, c.raw, []int{8, 64})
	const want = "element 50 is -Inf"
	if cpuErr == nil || !strings.Contains(cpuErr.Error(), want) {
		t.Fatalf("CPU error %v, want one containing %q", cpuErr, want)
	}
	x, _ := a.Alloc(int64(len(c.raw)), "x")
	if err := cuda.Upload(d, x, c.raw); err != nil {
		t.Fatal(err)
	}
	work, _ := a.Alloc(NF4QuantizeWorkBytes(int64(len(v))), "work")
	w, err := AllocNF4(a, 8, 64, quant.BlockSize, quant.NestedBlockSize, "w")
	if err != nil {
		t.Fatal(err)
	}
	err = QuantizeNF4(d, x, c.dt, w, work, "w")
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("GPU error %v, want one containing %q", err, want)
	}
	// Wrong block sizes and dtypes are refused before any launch.
	w.BlockSize = 32
	if err := QuantizeNF4(d, x, c.dt, w, work, "w"); err == nil || !strings.Contains(err.Error(), "block sizes") {
		t.Errorf("block size 32: error %v", err)
	}
	w.BlockSize = quant.BlockSize
	if err := QuantizeNF4(d, x, safetensors.I32, w, work, "w"); err == nil || !strings.Contains(err.Error(), "not BF16") {
		t.Errorf("dtype I32: error %v", err)
	}
}

// TestNF4ArenaBytes: NF4ArenaBytes is what AllocNF4 moves an arena's end by (to the next aligned offset), for
// a 7B MLP weight's shape, a small one and one whose blocks do not divide evenly.
func TestNF4ArenaBytes(t *testing.T) {
	d := cudatest.Device(t)
	a := cudatest.Arena(t, d, 1<<28)
	for _, s := range [][2]int{{18944, 3584}, {8, 64}, {3, 70}} {
		start := cuda.AlignUp(a.Mark())
		if _, err := AllocNF4(a, s[0], s[1], quant.BlockSize, quant.NestedBlockSize, "w"); err != nil {
			t.Fatal(err)
		}
		got, want := cuda.AlignUp(a.Mark())-start, NF4ArenaBytes(s[0], s[1], quant.BlockSize, quant.NestedBlockSize)
		if got != want {
			t.Errorf("[%d, %d]: AllocNF4 took %d bytes, NF4ArenaBytes says %d", s[0], s[1], got, want)
		}
	}
}
