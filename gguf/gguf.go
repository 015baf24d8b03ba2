package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Magic is "GGUF" read as a little-endian uint32; Version the format version written.
const (
	Magic     = 0x46554747
	Version   = 3
	Alignment = 32 // general.alignment's default: tensor data starts at multiples of it
)

// ValueType is a metadata value's type code.
type ValueType uint32

// The metadata value types of GGUF v3.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

// TensorType is a ggml tensor type code.
type TensorType uint32

// The ggml tensor types this package writes.
const (
	F32  TensorType = 0
	F16  TensorType = 1
	Q8_0 TensorType = 8
	BF16 TensorType = 30
)

// String names the type as ggml does.
func (t TensorType) String() string {
	switch t {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case Q8_0:
		return "Q8_0"
	case BF16:
		return "BF16"
	}
	return fmt.Sprintf("ggml type %d", uint32(t))
}

// KV is one metadata entry. Value is one of uint8, int8, uint16, int16, uint32, int32, float32, bool,
// string, uint64, int64, float64, or a slice of one of these ([]string, []int32, ...).
type KV struct {
	Key   string
	Value any
}

// TensorInfo describes one tensor: Shape in ggml order (ne[0] fastest).
type TensorInfo struct {
	Name  string
	Shape []uint64
	Type  TensorType
}

// Elements is the product of the shape.
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Bytes is the size of the tensor's data, or an error for a type this package does not know or a Q8_0
// tensor whose rows are not whole blocks of 32.
func (t TensorInfo) Bytes() (uint64, error) {
	n := t.Elements()
	switch t.Type {
	case F32:
		return 4 * n, nil
	case F16, BF16:
		return 2 * n, nil
	case Q8_0:
		if len(t.Shape) == 0 || t.Shape[0]%QK8_0 != 0 {
			return 0, fmt.Errorf("gguf: tensor %s: Q8_0 needs a first dimension that is a multiple of %d, shape %v", t.Name, QK8_0, t.Shape)
		}
		return n / QK8_0 * Q8_0BlockBytes, nil
	}
	return 0, fmt.Errorf("gguf: tensor %s: unsupported type %v", t.Name, t.Type)
}

// align rounds n up to a multiple of Alignment.
func align(n uint64) uint64 { return (n + Alignment - 1) / Alignment * Alignment }

// Write streams a GGUF v3 file to w: the metadata, the tensor infos with their offsets, then each
// tensor's data, which fill(i, w) writes for tensors[i] in order (exactly TensorInfo.Bytes bytes; Write
// checks and pads). Nothing of a tensor's data is held here.
func Write(w io.Writer, kvs []KV, tensors []TensorInfo, fill func(i int, w io.Writer) error) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	e := &encoder{w: bw}
	e.u32(Magic)
	e.u32(Version)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(kvs)))
	seen := map[string]bool{}
	for _, kv := range kvs {
		if seen[kv.Key] {
			return fmt.Errorf("gguf: metadata key %s given twice", kv.Key)
		}
		seen[kv.Key] = true
		e.str(kv.Key)
		if err := e.value(kv.Value, true); err != nil {
			return fmt.Errorf("gguf: metadata %s: %w", kv.Key, err)
		}
	}
	sizes := make([]uint64, len(tensors))
	offset := uint64(0)
	names := map[string]bool{}
	for i, t := range tensors {
		if names[t.Name] {
			return fmt.Errorf("gguf: tensor %s given twice", t.Name)
		}
		names[t.Name] = true
		size, err := t.Bytes()
		if err != nil {
			return err
		}
		sizes[i] = size
		e.str(t.Name)
		e.u32(uint32(len(t.Shape)))
		for _, d := range t.Shape {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(offset)
		offset = align(offset + size)
	}
	e.pad()
	if e.err != nil {
		return fmt.Errorf("gguf: writing the header: %w", e.err)
	}
	for i, t := range tensors {
		cw := &countWriter{w: bw}
		if err := fill(i, cw); err != nil {
			return fmt.Errorf("gguf: tensor %s: %w", t.Name, err)
		}
		if cw.n != sizes[i] {
			return fmt.Errorf("gguf: tensor %s: %d bytes written, %v %v needs %d", t.Name, cw.n, t.Type, t.Shape, sizes[i])
		}
		e.n += cw.n
		e.pad()
		if e.err != nil {
			return fmt.Errorf("gguf: tensor %s: %w", t.Name, e.err)
		}
	}
	return bw.Flush()
}

// encoder writes little-endian values, keeping the first error and the byte count.
type encoder struct {
	w   io.Writer
	n   uint64
	err error
}

func (e *encoder) bytes(b []byte) {
	if e.err != nil {
		return
	}
	_, e.err = e.w.Write(b)
	e.n += uint64(len(b))
}

func (e *encoder) u32(v uint32) { e.bytes(binary.LittleEndian.AppendUint32(nil, v)) }
func (e *encoder) u64(v uint64) { e.bytes(binary.LittleEndian.AppendUint64(nil, v)) }
func (e *encoder) str(s string) { e.u64(uint64(len(s))); e.bytes([]byte(s)) }

// pad writes zeros up to the next multiple of Alignment.
func (e *encoder) pad() {
	if n := align(e.n) - e.n; n > 0 {
		e.bytes(make([]byte, n))
	}
}

// value writes v's type code (when typed) and v.
func (e *encoder) value(v any, typed bool) error {
	t, elems, err := typeOf(v)
	if err != nil {
		return err
	}
	if typed {
		e.u32(uint32(t))
	}
	if t == TypeArray {
		et, _, err := typeOf(elems[0])
		if err != nil || et == TypeArray {
			return fmt.Errorf("unsupported array element type %T", elems[0])
		}
		e.u32(uint32(et))
		e.u64(uint64(len(elems)) - 1) // elems[0] is a zero value naming the element type
		for _, x := range elems[1:] {
			if err := e.value(x, false); err != nil {
				return err
			}
		}
		return nil
	}
	var b []byte
	switch x := v.(type) {
	case uint8:
		b = []byte{x}
	case int8:
		b = []byte{byte(x)}
	case uint16:
		b = binary.LittleEndian.AppendUint16(nil, x)
	case int16:
		b = binary.LittleEndian.AppendUint16(nil, uint16(x))
	case uint32:
		b = binary.LittleEndian.AppendUint32(nil, x)
	case int32:
		b = binary.LittleEndian.AppendUint32(nil, uint32(x))
	case float32:
		b = binary.LittleEndian.AppendUint32(nil, math.Float32bits(x))
	case bool:
		b = []byte{0}
		if x {
			b[0] = 1
		}
	case string:
		e.str(x)
		return nil
	case uint64:
		b = binary.LittleEndian.AppendUint64(nil, x)
	case int64:
		b = binary.LittleEndian.AppendUint64(nil, uint64(x))
	case float64:
		b = binary.LittleEndian.AppendUint64(nil, math.Float64bits(x))
	}
	e.bytes(b)
	return nil
}

// typeOf returns v's value type; for a slice, TypeArray and its elements preceded by a zero element
// (which names the element type even for an empty slice).
func typeOf(v any) (ValueType, []any, error) {
	switch x := v.(type) {
	case uint8:
		return TypeUint8, nil, nil
	case int8:
		return TypeInt8, nil, nil
	case uint16:
		return TypeUint16, nil, nil
	case int16:
		return TypeInt16, nil, nil
	case uint32:
		return TypeUint32, nil, nil
	case int32:
		return TypeInt32, nil, nil
	case float32:
		return TypeFloat32, nil, nil
	case bool:
		return TypeBool, nil, nil
	case string:
		return TypeString, nil, nil
	case uint64:
		return TypeUint64, nil, nil
	case int64:
		return TypeInt64, nil, nil
	case float64:
		return TypeFloat64, nil, nil
	case []string:
		return TypeArray, elems("", x), nil
	case []int32:
		return TypeArray, elems(int32(0), x), nil
	case []uint32:
		return TypeArray, elems(uint32(0), x), nil
	case []float32:
		return TypeArray, elems(float32(0), x), nil
	case []uint8:
		return TypeArray, elems(uint8(0), x), nil
	case []int64:
		return TypeArray, elems(int64(0), x), nil
	case []bool:
		return TypeArray, elems(false, x), nil
	}
	return 0, nil, fmt.Errorf("unsupported value type %T", v)
}

// elems is zero followed by xs, as []any.
func elems[T any](zero T, xs []T) []any {
	out := make([]any, 0, len(xs)+1)
	out = append(out, zero)
	for _, x := range xs {
		out = append(out, x)
	}
	return out
}

// countWriter counts what passes through.
type countWriter struct {
	w io.Writer
	n uint64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += uint64(n)
	return n, err
}
