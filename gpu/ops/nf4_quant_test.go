package ops

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/t2m/t2m/quant"
)

// quantRandom quantizes a random normal [rows, cols] matrix with quant.Quantize.
func quantRandom(t *testing.T, rng *rand.Rand, rows, cols int) *quant.Weight {
	t.Helper()
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 0.02)
	}
	w, err := quant.Quantize(x, []int{rows, cols})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// quantView is the inverse of NF4HostFromQuant: h as a double-quantized quant.Weight with the standard NF4
// table, so that quant's Dequantize — the CPU twin of nf4_dequant_bf16 — can dequantize any NF4Host (the
// tests' random ones too, whose block sizes and dynamic maps quant.Quantize never makes).
func quantView(h *NF4Host) *quant.Weight {
	return &quant.Weight{Shape: []int{h.Rows, h.Cols}, Codes: h.Codes, QuantMap: quant.NF4, BlockSize: h.BlockSize,
		Nested: true, QAbsmax: h.Absmax, NestedAbsmax: h.Absmax2, NestedMap: h.Code2,
		NestedBlockSize: h.BlockSize2, Offset: h.Offset}
}

// TestNF4HostFromQuant: the NF4Host view of a quant.Weight holds the same layout (viewed back as a
// quant.Weight it dequantizes to exactly the original's values), and weights the kernel cannot read are
// refused with a reason.
func TestNF4HostFromQuant(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range [][2]int{{64, 256}, {96, 200}, {7, 10}} {
		w := quantRandom(t, rng, s[0], s[1])
		h, err := NF4HostFromQuant(w)
		if err != nil {
			t.Fatal(err)
		}
		got := quantView(h).Dequantize()
		want := w.Dequantize()
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%v element %d: %g, quant says %g", s, i, got[i], want[i])
			}
		}
	}
	w := quantRandom(t, rng, 8, 64)
	fp4 := *w
	fp4.QuantMap[3] += 0.01
	flat := *w
	flat.Nested = false
	for _, c := range []struct {
		name string
		w    *quant.Weight
		want string
	}{
		{"not NF4", &fp4, "other than NF4"},
		{"not nested", &flat, "no double-quantized"},
		{"not 2-D", &quant.Weight{Shape: []int{512}}, "not [out, in]"},
	} {
		if _, err := NF4HostFromQuant(c.w); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}
