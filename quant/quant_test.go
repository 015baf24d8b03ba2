package quant

import (
	"math"
	"math/rand"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/t2m/t2m/safetensors"
)

func TestNF4Thresholds(t *testing.T) {
	// Each threshold lies within 2 float32 ulps of the midpoint of its two NF4 values.
	for i, m := range nf4Mid {
		mid := float32((float64(NF4[i]) + float64(NF4[i+1])) / 2)
		lo := math.Nextafter32(math.Nextafter32(mid, -2), -2)
		hi := math.Nextafter32(math.Nextafter32(mid, 2), 2)
		if m < lo || m > hi {
			t.Errorf("threshold %d = %v, midpoint %v", i, m, mid)
		}
	}
}

func TestNF4CodeNearestAndTies(t *testing.T) {
	for i, m := range nf4Mid {
		if got := nf4Code(m); got != byte(i) {
			t.Errorf("tie at midpoint %d (%v): code %d, want %d (lower)", i, m, got, i)
		}
		if got := nf4Code(math.Nextafter32(m, 2)); got != byte(i+1) {
			t.Errorf("just above midpoint %d: code %d, want %d", i, got, i+1)
		}
	}
	for i, v := range NF4 {
		if got := nf4Code(v); got != byte(i) {
			t.Errorf("NF4[%d] = %v → code %d", i, v, got)
		}
	}
	if nf4Code(float32(math.NaN())) != 0 {
		t.Error("NaN should give code 0 as in bitsandbytes")
	}
	// Brute-force nearest on random inputs away from the thresholds (which sit within
	// 2 ulps of the exact midpoints).
	r := rand.New(rand.NewSource(1))
	for range 10000 {
		x := float32(r.Float64()*2 - 1)
		near := false
		for _, m := range nf4Mid {
			near = near || math.Abs(float64(x-m)) < 1e-6
		}
		if near {
			continue
		}
		best := 0
		for j := range NF4 {
			if math.Abs(float64(x-NF4[j])) < math.Abs(float64(x-NF4[best])) {
				best = j
			}
		}
		if got := nf4Code(x); got != byte(best) {
			t.Fatalf("nf4Code(%v) = %d, nearest is %d", x, got, best)
		}
	}
}

func TestDynamicMapLandmarks(t *testing.T) {
	m := DynamicMap
	checks := map[int]float64{0: -0.99296875, 127: 0, 254: 0.99296875, 255: 1.0}
	for i, want := range checks {
		if math.Abs(float64(m[i])-want) > 1e-7 {
			t.Errorf("DynamicMap[%d] = %.9g, want %.9g", i, m[i], want)
		}
	}
	for i := 1; i < 256; i++ {
		if !(m[i] > m[i-1]) {
			t.Fatalf("DynamicMap not strictly increasing at %d: %v, %v", i, m[i-1], m[i])
		}
	}
	// The smallest magnitudes come from the 1e-6 exponent: 0.55e-6.
	if math.Abs(float64(m[128])-0.55e-6) > 1e-12 || m[126] != -m[128] {
		t.Errorf("DynamicMap[126,128] = %v, %v", m[126], m[128])
	}
}

func TestDynCodeIsNearest(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for range 20000 {
		x := float32(r.Float64()*2.2 - 1.1)
		if r.Intn(3) == 0 {
			x *= float32(math.Pow(10, -float64(r.Intn(7))))
		}
		got := dynCode(&DynamicMap, x)
		d := math.Abs(float64(x - DynamicMap[got]))
		for j, v := range DynamicMap {
			if math.Abs(float64(x-v)) < d {
				t.Fatalf("dynCode(%v) = %d (%v), but %d (%v) is nearer", x, got, DynamicMap[got], j, v)
			}
		}
	}
	if dynCode(&DynamicMap, float32(math.NaN())) != 0 {
		t.Error("NaN should give index 0 as in bitsandbytes")
	}
}

func randomWeight(r *rand.Rand, out, in int) []float32 {
	w := make([]float32, out*in)
	for i := range w {
		w[i] = float32(r.NormFloat64() * 0.02 * math.Exp(float64(i/in%5)-2))
	}
	return w
}

func TestQuantizeDequantizeError(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	out, in := 130, 192 // 390 blocks: two nested blocks, the last partial
	w := randomWeight(r, out, in)
	q, err := Quantize(w, []int{out, in})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Codes) != out*in/2 || len(q.QAbsmax) != 390 || len(q.NestedAbsmax) != 2 {
		t.Fatalf("sizes codes=%d qabsmax=%d nested=%d", len(q.Codes), len(q.QAbsmax), len(q.NestedAbsmax))
	}
	d := q.Dequantize()
	abs := q.BlockAbsmax()
	for b := range abs {
		var m float64
		for _, v := range w[b*64 : (b+1)*64] {
			m = math.Max(m, math.Abs(float64(v)))
		}
		// Double quantization: the absmax is off by at most half the largest gap of the
		// dynamic map (0.9/64/2 near ±1) times the nested block's absmax.
		absErr := math.Abs(float64(abs[b]) - m)
		if bound := 0.00704*float64(q.NestedAbsmax[b/256]) + 1e-7; absErr > bound {
			t.Errorf("block %d absmax %v, true %v (bound %v)", b, abs[b], m, bound)
		}
		for i := b * 64; i < (b+1)*64; i++ {
			// NF4 values are at most 0.304 apart (-1 to -0.696): the code is off by at
			// most 0.152·absmax, plus the absmax error itself.
			if e := math.Abs(float64(d[i] - w[i])); e > 0.1522*m+absErr+1e-7 {
				t.Fatalf("element %d: %v → %v (absmax %v)", i, w[i], d[i], m)
			}
		}
	}
	// Each code is the nearest NF4 value to w/absmax (the true absmax of the block).
	for i, v := range w {
		var m float32
		for _, u := range w[i/64*64 : i/64*64+64] {
			m = max(m, float32(math.Abs(float64(u))))
		}
		c := q.Codes[i/2]
		if i%2 == 0 {
			c >>= 4
		} else {
			c &= 15
		}
		if c != nf4Code(v*(1/m)) {
			t.Fatalf("element %d: code %d, want %d", i, c, nf4Code(v*(1/m)))
		}
	}
}

func TestDequantizeRowsMatchesWhole(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	out, in := 9, 101 // blocks straddle rows; odd row starts and an odd total
	q, err := Quantize(randomWeight(r, out, in), []int{out, in})
	if err != nil {
		t.Fatal(err)
	}
	whole := q.Dequantize()
	for _, rr := range [][2]int{{0, 9}, {1, 2}, {3, 7}, {8, 9}, {4, 4}} {
		dst := make([]float32, (rr[1]-rr[0])*in)
		if err := q.DequantizeRows(rr[0], rr[1], dst); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(dst, whole[rr[0]*in:rr[1]*in]) {
			t.Errorf("rows %v differ from Dequantize", rr)
		}
	}
	if err := q.DequantizeRows(5, 10, make([]float32, 505)); err == nil {
		t.Error("rows past the end accepted")
	}
	if err := q.DequantizeRows(0, 1, make([]float32, 3)); err == nil {
		t.Error("short dst accepted")
	}
}

func TestQuantizeRawMatchesFloat(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	w := randomWeight(r, 33, 64)
	raw := safetensors.BF16Bytes(w)
	bf := make([]float32, len(w))
	safetensors.DecodeFloat32(safetensors.BF16, raw, bf)
	a, err := QuantizeRaw("x", safetensors.BF16, raw, []int{33, 64})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Quantize(bf, []int{33, 64})
	if !reflect.DeepEqual(a.Codes, b.Codes) || !reflect.DeepEqual(a.QAbsmax, b.QAbsmax) || a.Offset != b.Offset || a.DType != "bfloat16" {
		t.Error("QuantizeRaw(bf16) differs from Quantize of the decoded values")
	}
	if _, err := QuantizeRaw("x", safetensors.BF16, raw[:10], []int{33, 64}); err == nil || !strings.Contains(err.Error(), "x") {
		t.Errorf("short raw: %v", err)
	}
	w[77] = float32(math.Inf(1))
	if _, err := Quantize(w, []int{33, 64}); err == nil || !strings.Contains(err.Error(), "element 77") {
		t.Errorf("Inf weight: %v", err)
	}
}

func TestBNBRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(6))
	q, err := Quantize(randomWeight(r, 48, 96), []int{48, 96})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "bnb.safetensors")
	name := "model.layers.0.mlp.up_proj.weight"
	if err := safetensors.Write(p, q.Tensors(name), nil); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !IsBNB(f, name) || IsBNB(f, "model.layers.0.mlp.down_proj.weight") {
		t.Error("IsBNB")
	}
	if info, _ := f.Info(name); !reflect.DeepEqual(info.Shape, []int{48 * 96 / 2, 1}) {
		t.Errorf("codes shape %v", info.Shape)
	}
	got, err := LoadBNB(f, name)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, q) {
		t.Errorf("loaded weight differs:\n got %+v\nwant %+v", got.Shape, q.Shape)
	}
	if !reflect.DeepEqual(got.Dequantize(), q.Dequantize()) {
		t.Error("dequantized values differ after the round trip")
	}
}

func TestLoadBNBCorrupt(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	q, _ := Quantize(randomWeight(r, 8, 64), []int{8, 64})
	name := "m.weight"
	cases := map[string]func([]safetensors.Tensor) []safetensors.Tensor{
		"short codes": func(ts []safetensors.Tensor) []safetensors.Tensor {
			ts[0] = safetensors.U8Tensor(name, []int{10, 1}, make([]byte, 10))
			return ts
		},
		"bad json": func(ts []safetensors.Tensor) []safetensors.Tensor {
			ts[len(ts)-1] = safetensors.U8Tensor(name+SuffixQuantStateNF4, []int{3}, []byte("{x:"))
			return ts
		},
		"short map": func(ts []safetensors.Tensor) []safetensors.Tensor {
			ts[1] = safetensors.F32Tensor(name+SuffixQuantMap, []int{4}, make([]float32, 4))
			return ts
		},
		"missing nested map": func(ts []safetensors.Tensor) []safetensors.Tensor {
			return append(ts[:4:4], ts[5])
		},
	}
	for what, edit := range cases {
		ts := edit(q.Tensors(name))
		p := filepath.Join(t.TempDir(), "c.safetensors")
		if err := safetensors.Write(p, ts, nil); err != nil {
			t.Fatal(err)
		}
		f, err := safetensors.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := LoadBNB(f, name); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v should name %q", what, err, name)
		}
		f.Close()
	}
}

func TestNF4CodeFastAgrees(t *testing.T) {
	r := rand.New(rand.NewSource(8))
	xs := []float32{-1, 1, 0, math.Nextafter32(1, 2), math.Nextafter32(-1, -2), float32(math.NaN())}
	for _, m := range nf4Mid {
		for d := -4; d <= 4; d++ {
			x := m
			for range abs(d) {
				x = math.Nextafter32(x, float32(d))
			}
			xs = append(xs, x)
		}
	}
	for i := 0; i <= nf4Cells; i++ { // every LUT cell edge and its neighbours
		x := float32(-1 + 2*float64(i)/nf4Cells)
		xs = append(xs, x, math.Nextafter32(x, 2), math.Nextafter32(x, -2))
	}
	for range 200000 {
		xs = append(xs, float32(r.Float64()*2-1))
	}
	for _, x := range xs {
		if a, b := nf4CodeFast(x), nf4Code(x); a != b {
			t.Fatalf("nf4CodeFast(%v) = %d, nf4Code = %d", x, a, b)
		}
	}
}

func abs(d int) int { return max(d, -d) }
