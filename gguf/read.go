package gguf

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/t2m/t2m/safetensors"
)

// File is a GGUF file read back: its metadata, tensor infos and the bytes of each tensor.
type File struct {
	Version uint32
	KV      map[string]any // values as Write takes them: uint32, string, []string, []int32, ...
	Keys    []string       // metadata keys in file order
	Tensors []TensorInfo   // in file order
	Offsets []uint64       // each tensor's offset from the data start
	data    []byte         // the whole file
	start   uint64         // where tensor data starts
}

// Parse reads a GGUF file held in memory (the whole image), checking the header, every metadata value,
// each tensor's offset alignment, and that its data lies inside the file. It never panics on bad input.
func Parse(b []byte) (*File, error) {
	d := &decoder{b: b}
	if d.u32() != Magic {
		return nil, fmt.Errorf("gguf: not a GGUF file (bad magic)")
	}
	f := &File{Version: d.u32(), KV: map[string]any{}, data: b}
	if f.Version != Version {
		return nil, fmt.Errorf("gguf: version %d, only %d is read", f.Version, Version)
	}
	nt, nkv := d.u64(), d.u64()
	if d.err != nil || nt > uint64(len(b)) || nkv > uint64(len(b)) {
		return nil, fmt.Errorf("gguf: bad header counts (%d tensors, %d metadata)", nt, nkv)
	}
	for range nkv {
		k := d.str()
		v := d.value(ValueType(d.u32()))
		if d.err != nil {
			return nil, fmt.Errorf("gguf: metadata %q: %w", k, d.err)
		}
		if _, dup := f.KV[k]; dup {
			return nil, fmt.Errorf("gguf: metadata key %q twice", k)
		}
		f.KV[k], f.Keys = v, append(f.Keys, k)
	}
	for range nt {
		t := TensorInfo{Name: d.str()}
		dims := d.u32()
		if dims > 4 {
			return nil, fmt.Errorf("gguf: tensor %q has %d dimensions (ggml has at most 4)", t.Name, dims)
		}
		for range dims {
			t.Shape = append(t.Shape, d.u64())
		}
		t.Type = TensorType(d.u32())
		off := d.u64()
		if d.err != nil {
			return nil, fmt.Errorf("gguf: tensor info %d: %w", len(f.Tensors), d.err)
		}
		f.Tensors, f.Offsets = append(f.Tensors, t), append(f.Offsets, off)
	}
	f.start = align(uint64(d.off))
	for i, t := range f.Tensors {
		size, err := t.Bytes()
		if err != nil {
			return nil, err
		}
		off := f.Offsets[i]
		if off%Alignment != 0 || f.start+off+size > uint64(len(b)) || f.start+off+size < off {
			return nil, fmt.Errorf("gguf: tensor %s: offset %d size %d outside the %d-byte file or unaligned", t.Name, off, size, len(b))
		}
	}
	return f, nil
}

// Data returns the bytes of tensor i.
func (f *File) Data(i int) []byte {
	size, _ := f.Tensors[i].Bytes() // checked by Parse
	off := f.start + f.Offsets[i]
	return f.data[off : off+size]
}

// Tensor returns the index of the named tensor, or -1.
func (f *File) Tensor(name string) int {
	for i, t := range f.Tensors {
		if t.Name == name {
			return i
		}
	}
	return -1
}

// Float32 decodes tensor i (F32, F16, BF16 or Q8_0) to float32.
func (f *File) Float32(i int) ([]float32, error) {
	b := f.Data(i)
	switch f.Tensors[i].Type {
	case F32:
		out := make([]float32, len(b)/4)
		for j := range out {
			out[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
		}
		return out, nil
	case BF16:
		out := make([]float32, len(b)/2)
		for j := range out {
			out[j] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*j:])) << 16)
		}
		return out, nil
	case F16:
		out := make([]float32, len(b)/2)
		for j := range out {
			out[j] = safetensors.F16ToFloat32(binary.LittleEndian.Uint16(b[2*j:]))
		}
		return out, nil
	case Q8_0:
		return DequantizeQ8_0(b)
	}
	return nil, fmt.Errorf("gguf: tensor %s: cannot decode %v", f.Tensors[i].Name, f.Tensors[i].Type)
}

// decoder reads little-endian values, keeping the first error (reads past the end return zeros).
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) next(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.err = fmt.Errorf("truncated at byte %d (%d more wanted)", d.off, n)
		return nil
	}
	p := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return p
}

func (d *decoder) u8() uint8 {
	if p := d.next(1); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if p := d.next(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if p := d.next(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if p := d.next(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) str() string { return string(d.next(d.u64())) }

// value reads one value of type t; arrays become typed slices.
func (d *decoder) value(t ValueType) any {
	switch t {
	case TypeUint8:
		return d.u8()
	case TypeInt8:
		return int8(d.u8())
	case TypeUint16:
		return d.u16()
	case TypeInt16:
		return int16(d.u16())
	case TypeUint32:
		return d.u32()
	case TypeInt32:
		return int32(d.u32())
	case TypeFloat32:
		return math.Float32frombits(d.u32())
	case TypeBool:
		return d.u8() != 0
	case TypeString:
		return d.str()
	case TypeUint64:
		return d.u64()
	case TypeInt64:
		return int64(d.u64())
	case TypeFloat64:
		return math.Float64frombits(d.u64())
	case TypeArray:
		return d.array()
	}
	if d.err == nil {
		d.err = fmt.Errorf("unknown value type %d", t)
	}
	return nil
}

// array reads an array's element type, count and elements into a typed slice.
func (d *decoder) array() any {
	et, n := ValueType(d.u32()), d.u64()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) { // every element takes at least one byte
		d.err = fmt.Errorf("array of %d elements in %d bytes", n, len(d.b)-d.off)
		return nil
	}
	switch et {
	case TypeString:
		return collect(n, d, d.str)
	case TypeInt32:
		return collect(n, d, func() int32 { return int32(d.u32()) })
	case TypeUint32:
		return collect(n, d, d.u32)
	case TypeFloat32:
		return collect(n, d, func() float32 { return math.Float32frombits(d.u32()) })
	case TypeUint8:
		return collect(n, d, d.u8)
	case TypeInt64:
		return collect(n, d, func() int64 { return int64(d.u64()) })
	case TypeBool:
		return collect(n, d, func() bool { return d.u8() != 0 })
	}
	d.err = fmt.Errorf("arrays of value type %d are not read", et)
	return nil
}

// collect reads n values with read, stopping at the first error.
func collect[T any](n uint64, d *decoder, read func() T) []T {
	out := make([]T, 0, min(n, 1<<16))
	for i := uint64(0); i < n && d.err == nil; i++ {
		out = append(out, read())
	}
	return out
}
