//go:build t2mcuda

package ops

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
)

// randomNF4 makes a random NF4Host with plausible tables (sorted dynamic map in [-1, 1], positive nested
// absmax, non-zero offset).
func randomNF4(rng *rand.Rand, rows, cols, bs, bs2 int) *NF4Host {
	n := rows * cols
	nb, nb2 := ceilDiv(n, bs), ceilDiv(ceilDiv(n, bs), bs2)
	h := &NF4Host{Rows: rows, Cols: cols, BlockSize: bs, BlockSize2: bs2, Offset: 0.01 + 0.05*rng.Float32(),
		Codes: make([]byte, n/2), Absmax: make([]byte, nb), Absmax2: make([]float32, nb2)}
	for i := range h.Codes {
		h.Codes[i] = byte(rng.IntN(256))
	}
	for i := range h.Absmax {
		h.Absmax[i] = byte(rng.IntN(256))
	}
	for i := range h.Code2 {
		h.Code2[i] = 2*rng.Float32() - 1
	}
	slices.Sort(h.Code2[:])
	for i := range h.Absmax2 {
		h.Absmax2[i] = 0.01 + 0.1*rng.Float32()
	}
	return h
}

// TestDequantNF4Quant compares the kernel with quant's own Dequantize on weights quant.Quantize made,
// bit for bit after bf16 rounding.
func TestDequantNF4Quant(t *testing.T) {
	d := cudatest.Device(t)
	rng := rand.New(rand.NewPCG(8, 8))
	for _, s := range [][2]int{{512, 3584}, {96, 200}, {7, 10}} {
		w := quantRandom(t, rng, s[0], s[1])
		h, err := NF4HostFromQuant(w)
		if err != nil {
			t.Fatal(err)
		}
		a := cudatest.Arena(t, d, int64(s[0]*s[1])*4+1<<20)
		dw, err := UploadNF4(d, a, h, "w")
		if err != nil {
			t.Fatal(err)
		}
		n := s[0] * s[1]
		out, _ := a.Alloc(int64(2*n), "out")
		if err := d.Memset(out, 0xFF); err != nil {
			t.Fatal(err)
		}
		if err := DequantNF4(d, dw, out); err != nil {
			t.Fatal(err)
		}
		got := make([]uint16, n)
		if err := cuda.Download(d, got, out); err != nil {
			t.Fatal(err)
		}
		for i, v := range w.Dequantize() {
			if got[i] != cuda.BF16(v) {
				t.Fatalf("%v element %d: %#x, want %#x (%g)", s, i, got[i], cuda.BF16(v), v)
			}
		}
	}
}

// TestDequantNF4 compares nf4_dequant_bf16 with its CPU twin, quant's Dequantize (through quantView), rounded
// to bf16: the kernel rounds exactly as the CPU twin does, so every value must match bit for bit (a bf16
// tolerance would hide wrong nibbles of small codes).
func TestDequantNF4(t *testing.T) {
	d := cudatest.Device(t)
	rng := rand.New(rand.NewPCG(4, 4))
	for _, s := range []struct{ rows, cols, bs, bs2 int }{
		{96, 200, 64, 256},   // 19200 elements: 300 blocks, 2 nested blocks
		{512, 3584, 64, 256}, // a k_proj-shaped weight
		{7, 10, 16, 3},       // 70 elements: a partial last thread and block
		{33, 64, 32, 5},
		{3, 16, 16, 2},   // 48 elements: one full thread of 32, a 16-element tail in its own block
		{3, 100, 16, 3},  // 300: a lane's second 8 elements partial
		{13, 370, 16, 4}, // 4810: the second block's second warp partial
	} {
		h := randomNF4(rng, s.rows, s.cols, s.bs, s.bs2)
		a := cudatest.Arena(t, d, int64(s.rows*s.cols)*4+1<<20)
		w, err := UploadNF4(d, a, h, "w")
		if err != nil {
			t.Fatal(err)
		}
		n := s.rows * s.cols
		out, _ := a.Alloc(int64(2*n+16), "out")
		if err := d.Memset(out, 0xFF); err != nil { // bf16 0xFFFF is NaN
			t.Fatal(err)
		}
		if err := DequantNF4(d, w, out); err != nil {
			t.Fatal(err)
		}
		got := make([]uint16, n+8)
		if err := cuda.Download(d, got, out); err != nil {
			t.Fatal(err)
		}
		if err := h.Check(); err != nil {
			t.Fatal(err)
		}
		ref := quantView(h).Dequantize()
		bad := 0
		for i, r := range ref {
			if got[i] != cuda.BF16(r) {
				if bad < 5 {
					t.Errorf("[%dx%d] element %d: %#x (%g), want %#x (%g)", s.rows, s.cols, i, got[i], cuda.F32(got[i]),
						cuda.BF16(r), r)
				}
				bad++
			}
		}
		if got[n] != 0xFFFF {
			t.Errorf("[%dx%d]: wrote past the end", s.rows, s.cols)
		}
		if bad > 0 {
			t.Errorf("[%dx%d]: %d of %d values differ", s.rows, s.cols, bad, n)
		}
	}
}

// TestRandomFills checks the fill kernels against their CPU twins, bit for bit, on poisoned buffers.
func TestRandomFills(t *testing.T) {
	d := cudatest.Device(t)
	a := cudatest.Arena(t, d, 1<<22)
	const n = 100_003
	b, _ := a.Alloc(2*n, "fill")
	for _, seed := range []uint64{1, 0xdeadbeef12345} {
		if err := d.Memset(b, 0xAB); err != nil {
			t.Fatal(err)
		}
		if err := FillRandomU8(d, b.Slice(0, n), seed); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, n+1)
		if err := cuda.Download(d, got, b); err != nil {
			t.Fatal(err)
		}
		want := cuda.RandomU8CPU(n, seed)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("fill_random_u8 seed %d [%d] = %d, want %d", seed, i, got[i], want[i])
			}
		}
		if got[n] != 0xAB {
			t.Errorf("fill_random_u8 wrote past its end")
		}
		if err := FillRandomBF16(d, b, n, seed, 0.5); err != nil {
			t.Fatal(err)
		}
		gotb := make([]uint16, n)
		if err := cuda.Download(d, gotb, b); err != nil {
			t.Fatal(err)
		}
		wantb := cuda.RandomBF16CPU(n, seed, 0.5)
		for i := range wantb {
			if gotb[i] != wantb[i] {
				t.Fatalf("fill_random_bf16 seed %d [%d] = %#x, want %#x", seed, i, gotb[i], wantb[i])
			}
		}
	}
}
