package quant

import (
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/t2m/t2m/safetensors"
)

// testdata/nf4_ref.safetensors comes from scripts/fixtures/make_nf4_fixture.py, an
// independent torch implementation of bitsandbytes' NF4 + double quantization run on
// the GPU machine (torch 2.11, CPU capability AVX512). Everything is compared bit for
// bit: the algorithm is deterministic float32 arithmetic, so any difference is a bug.
func openFixture(t *testing.T) *safetensors.File {
	t.Helper()
	f, err := safetensors.Open("testdata/nf4_ref.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func floats(t *testing.T, f *safetensors.File, name string) []float32 {
	t.Helper()
	v, err := f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func raw(t *testing.T, f *safetensors.File, name string) []byte {
	t.Helper()
	v, err := f.Raw(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// sameBits reports the first index where two float32 slices differ in bits.
func sameBits(a, b []float32) error {
	if len(a) != len(b) {
		return fmt.Errorf("lengths %d and %d", len(a), len(b))
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return fmt.Errorf("index %d: %v (%#08x) vs %v (%#08x)", i, a[i], math.Float32bits(a[i]), b[i], math.Float32bits(b[i]))
		}
	}
	return nil
}

func TestDynamicMapMatchesTorch(t *testing.T) {
	f := openFixture(t)
	for k := range 7 {
		n := 1<<k + 1
		if err := sameBits(torchLinspace(0.1, 1, n), floats(t, f, fmt.Sprintf("linspace_%d", n))); err != nil {
			t.Errorf("linspace(0.1, 1, %d): %v", n, err)
		}
	}
	if err := sameBits(DynamicMap[:], floats(t, f, "dynamic_map")); err != nil {
		t.Errorf("DynamicMap vs torch: %v", err)
	}
}

func TestQuantizeMatchesReference(t *testing.T) {
	f := openFixture(t)
	for _, name := range []string{"a", "b", "c"} {
		info, err := f.Info(name + ".weight")
		if err != nil {
			t.Fatal(err)
		}
		q, err := QuantizeRaw(name, info.DType, raw(t, f, name+".weight"), info.Shape)
		if err != nil {
			t.Fatal(err)
		}
		if want := raw(t, f, name+".codes"); !reflect.DeepEqual(q.Codes, want) {
			for i := range want {
				if q.Codes[i] != want[i] {
					t.Errorf("%s: codes byte %d = %#02x, want %#02x", name, i, q.Codes[i], want[i])
					break
				}
			}
		}
		if want := floats(t, f, name+".offset"); q.Offset != want[0] {
			t.Errorf("%s: offset %v, want %v", name, q.Offset, want[0])
		}
		if err := sameBits(q.NestedAbsmax, floats(t, f, name+".nested_absmax")); err != nil {
			t.Errorf("%s: nested absmax: %v", name, err)
		}
		if want := raw(t, f, name+".qabsmax"); !reflect.DeepEqual(q.QAbsmax, want) {
			t.Errorf("%s: absmax codes differ:\n got %v\nwant %v", name, q.QAbsmax, want)
		}
		if err := sameBits(q.Dequantize(), floats(t, f, name+".dequant")); err != nil {
			t.Errorf("%s: dequantized: %v", name, err)
		}
	}
}

// TestBNBLayoutMatchesPython reads the bitsandbytes-layout tensors that Python wrote
// and checks both directions: LoadBNB dequantizes them exactly, and Tensors writes the
// same tensors byte for byte (the quant_state JSON included).
func TestBNBLayoutMatchesPython(t *testing.T) {
	f := openFixture(t)
	const name = "bnb.q_proj.weight"
	if !IsBNB(f, name) {
		t.Fatal("IsBNB false on the bitsandbytes tensors")
	}
	w, err := LoadBNB(f, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameBits(w.Dequantize(), floats(t, f, "a.dequant")); err != nil {
		t.Errorf("dequantized bnb weight: %v", err)
	}
	for _, ts := range w.Tensors(name) {
		info, err := f.Info(ts.Name)
		if err != nil {
			t.Errorf("Tensors wrote %q, which Python's layout lacks", ts.Name)
			continue
		}
		if info.DType != ts.DType || !reflect.DeepEqual(info.Shape, ts.Shape) {
			t.Errorf("%s: %s %v, Python has %s %v", ts.Name, ts.DType, ts.Shape, info.DType, info.Shape)
		}
		if got := raw(t, f, ts.Name); string(got) != string(ts.Data) {
			t.Errorf("%s: bytes differ\n got %q\nwant %q", ts.Name, ts.Data, got)
		}
	}
}
