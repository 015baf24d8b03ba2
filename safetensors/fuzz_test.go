package safetensors

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"testing"
)

// FuzzParse checks that any bytes parse to a File or an error, never a panic, and that an accepted
// header's tensors lie inside the data and convert to as many float32 values as their shape holds.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "a.safetensors")
	if err := Write(path, []Tensor{F32Tensor("w", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
		F32Tensor("b", []int{1}, []float32{7})}, map[string]string{"format": "pt"}); err != nil {
		f.Fatal(err)
	}
	if sf, err := Open(path); err == nil {
		f.Add(append([]byte(nil), sf.data...))
		sf.Close()
	}
	hdr := func(h string, body int) []byte {
		var b bytes.Buffer
		binary.Write(&b, binary.LittleEndian, uint64(len(h)))
		b.WriteString(h)
		b.Write(make([]byte, body))
		return b.Bytes()
	}
	f.Add(hdr(`{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}`, 0))
	f.Add(hdr(`{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4))
	f.Add(hdr(`{"x":{"dtype":"BF16","shape":[2],"data_offsets":[4,0]}}`, 4))
	f.Add(hdr(`{"__metadata__":{"a":1}}`, 0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{'})
	f.Fuzz(func(t *testing.T, raw []byte) {
		sf, err := Parse("fuzz", raw)
		if err != nil {
			return
		}
		defer sf.Close()
		for _, name := range sf.Names() {
			info, err := sf.Info(name)
			if err != nil {
				t.Fatalf("Info(%q) of a listed tensor: %v", name, err)
			}
			b, err := sf.Raw(name)
			if err != nil {
				t.Fatalf("Raw(%q) of a listed tensor: %v", name, err)
			}
			if int64(len(b)) != info.End-info.Begin {
				t.Fatalf("Raw(%q) has %d bytes, offsets say %d", name, len(b), info.End-info.Begin)
			}
			if v, err := sf.Float32(name); err == nil {
				n := 1
				for _, d := range info.Shape {
					n *= d
				}
				if len(v) != n {
					t.Fatalf("Float32(%q) gave %d values for shape %v", name, len(v), info.Shape)
				}
			}
		}
	})
}
