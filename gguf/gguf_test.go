package gguf

import (
	"bytes"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/t2m/t2m/safetensors"
)

// testFile writes a small file with every metadata kind t2m uses and one tensor of each type.
func testFile(t *testing.T) ([]byte, []KV, []TensorInfo, [][]float32) {
	t.Helper()
	kvs := []KV{{"general.architecture", "qwen2"}, {"qwen2.block_count", uint32(2)}, {"qwen2.rope.freq_base", float32(1e6)},
		{"tokenizer.ggml.add_bos_token", false}, {"tokenizer.ggml.tokens", []string{"a", "Ġb", "<|im_end|>"}},
		{"tokenizer.ggml.token_type", []int32{1, 1, 3}}, {"empty", []string{}}, {"big", uint64(1 << 40)}, {"neg", int64(-5)}, {"f64", 0.25}}
	tensors := []TensorInfo{{"a", []uint64{3}, F32}, {"b", []uint64{64, 2}, Q8_0}, {"c", []uint64{5, 3}, BF16}}
	vals := [][]float32{{1, -2, 3.5}, make([]float32, 128), make([]float32, 15)}
	for i := range vals[1] {
		vals[1][i] = float32(math.Sin(float64(i))) * 3
	}
	for i := range vals[2] {
		vals[2][i] = float32(i) - 7.25
	}
	var buf bytes.Buffer
	err := Write(&buf, kvs, tensors, func(i int, w io.Writer) error {
		var b []byte
		switch tensors[i].Type {
		case F32:
			b = AppendF32(nil, vals[i])
		case BF16:
			b = AppendBF16(nil, vals[i])
		case Q8_0:
			var err error
			if b, err = AppendQ8_0(nil, vals[i]); err != nil {
				return err
			}
		}
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), kvs, tensors, vals
}

// What Write wrote, Parse reads back: metadata values with their types, shapes, types, aligned offsets and
// the tensors' values (exact for F32 and BF16-representable values, within half a Q8_0 step otherwise).
func TestWriteParseRoundTrip(t *testing.T) {
	b, kvs, tensors, vals := testFile(t)
	f, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Keys) != len(kvs) {
		t.Fatalf("%d keys, want %d", len(f.Keys), len(kvs))
	}
	for i, kv := range kvs {
		if f.Keys[i] != kv.Key || !reflect.DeepEqual(f.KV[kv.Key], kv.Value) {
			t.Errorf("metadata %d: %s = %#v, want %s = %#v", i, f.Keys[i], f.KV[f.Keys[i]], kv.Key, kv.Value)
		}
	}
	if !reflect.DeepEqual(f.Tensors, tensors) {
		t.Fatalf("tensors %+v, want %+v", f.Tensors, tensors)
	}
	for i := range tensors {
		if f.Offsets[i]%Alignment != 0 || (f.start+f.Offsets[i])%Alignment != 0 {
			t.Errorf("tensor %d at unaligned offset %d (data start %d)", i, f.Offsets[i], f.start)
		}
		got, err := f.Float32(i)
		if err != nil {
			t.Fatal(err)
		}
		tol := 0.0
		if tensors[i].Type == Q8_0 {
			tol = 3.0 / 127 * (0.5 + 127.0/2048) * 1.01 // half a step of a block whose max is ≤ 3, plus the fp16 scale rounding
		}
		for j := range vals[i] {
			if d := math.Abs(float64(got[j] - vals[i][j])); d > tol {
				t.Fatalf("tensor %s[%d] = %v, want %v (tolerance %v)", tensors[i].Name, j, got[j], vals[i][j], tol)
			}
		}
	}
	if len(b)%Alignment != 0 {
		t.Errorf("file size %d is not padded to the alignment", len(b))
	}
}

// Every truncation of a valid file is an error, never a panic; so is a wrong magic or version.
func TestParseRejectsDamage(t *testing.T) {
	b, _, _, _ := testFile(t)
	for n := 0; n < len(b)-1; n += 7 {
		if _, err := Parse(b[:n]); err == nil {
			t.Fatalf("a file cut to %d of %d bytes parsed", n, len(b))
		}
	}
	bad := bytes.Clone(b)
	bad[4] = 2
	if _, err := Parse(bad); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("version 2: %v", err)
	}
	bad = bytes.Clone(b)
	bad[0] = 'X'
	if _, err := Parse(bad); err == nil {
		t.Error("bad magic parsed")
	}
}

// Write refuses a fill that writes the wrong size, duplicate names, Q8_0 rows that are not whole blocks
// and metadata of a type GGUF lacks.
func TestWriteErrors(t *testing.T) {
	one := func(i int, w io.Writer) error { _, err := w.Write(make([]byte, 3)); return err }
	for name, tc := range map[string]struct {
		kvs     []KV
		tensors []TensorInfo
		want    string
	}{
		"size":     {nil, []TensorInfo{{"a", []uint64{1}, F32}}, "3 bytes written"},
		"dup":      {nil, []TensorInfo{{"a", []uint64{1}, F32}, {"a", []uint64{1}, F32}}, "twice"},
		"q8 rows":  {nil, []TensorInfo{{"a", []uint64{48, 2}, Q8_0}}, "multiple of 32"},
		"kv type":  {[]KV{{"x", struct{}{}}}, nil, "unsupported value type"},
		"kv twice": {[]KV{{"x", uint32(1)}, {"x", uint32(2)}}, nil, "twice"},
	} {
		err := Write(io.Discard, tc.kvs, tc.tensors, one)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
}

// Q8_0 is ggml's reference: the scale is max|x|/127 in fp16 and the values round half away from zero.
func TestQ8_0Reference(t *testing.T) {
	x := make([]float32, 64)
	x[0], x[1], x[2] = 127, -63.5, 0.49 // block 0: d = 1 exactly; -63.5 rounds to -64
	// block 1 stays zero: d = 0, every q = 0
	b, err := AppendQ8_0(nil, x)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 2*Q8_0BlockBytes {
		t.Fatalf("%d bytes, want %d", len(b), 2*Q8_0BlockBytes)
	}
	if d := safetensors.F16ToFloat32(uint16(b[0]) | uint16(b[1])<<8); d != 1 {
		t.Errorf("scale %v, want 1", d)
	}
	if q := []int8{int8(b[2]), int8(b[3]), int8(b[4])}; q[0] != 127 || q[1] != -64 || q[2] != 0 {
		t.Errorf("q %v, want [127 -64 0]", q)
	}
	for _, v := range b[Q8_0BlockBytes:] {
		if v != 0 {
			t.Fatalf("zero block encoded as %v", b[Q8_0BlockBytes:])
		}
	}
	if _, err := AppendQ8_0(nil, make([]float32, 33)); err == nil {
		t.Error("33 values quantized")
	}
}

// F16FromFloat32 inverts safetensors.F16ToFloat32 on every half value and rounds to nearest even
// between them (ties go to the even neighbour; overflow to inf; below half the smallest subnormal to 0).
func TestF16FromFloat32(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := safetensors.F16ToFloat32(uint16(h))
		if f != f { // NaN
			if got := F16FromFloat32(f); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
				t.Fatalf("NaN %#04x → %#04x", h, got)
			}
			continue
		}
		if got := F16FromFloat32(f); got != uint16(h) {
			t.Fatalf("%#04x (%v) → %#04x", h, f, got)
		}
	}
	for _, tc := range []struct {
		f    float32
		want uint16
	}{{1 + 1.0/2048, 0x3c00}, {1 + 3.0/2048, 0x3c02}, {65519, 0x7bff}, {65520, 0x7c00}, {1e10, 0x7c00},
		{-1e10, 0xfc00}, {2.98e-8, 0}, {2.99e-8, 1}, {float32(math.Ldexp(3, -25)), 2}} {
		if got := F16FromFloat32(tc.f); got != tc.want {
			t.Errorf("%v → %#04x, want %#04x", tc.f, got, tc.want)
		}
	}
}
