package safetensors

import "fmt"

// DType is a safetensors element type, spelled as in the file header ("F32", "BF16", ...).
type DType string

// The element types of the safetensors format.
const (
	Bool    DType = "BOOL"
	U8      DType = "U8"
	I8      DType = "I8"
	F8E4M3  DType = "F8_E4M3"
	F8E5M2  DType = "F8_E5M2"
	I16     DType = "I16"
	U16     DType = "U16"
	F16     DType = "F16"
	BF16    DType = "BF16"
	I32     DType = "I32"
	U32     DType = "U32"
	F32     DType = "F32"
	F64     DType = "F64"
	I64     DType = "I64"
	U64     DType = "U64"
	dtypeNA DType = ""
)

var dtypeSizes = map[DType]int{
	Bool: 1, U8: 1, I8: 1, F8E4M3: 1, F8E5M2: 1,
	I16: 2, U16: 2, F16: 2, BF16: 2,
	I32: 4, U32: 4, F32: 4,
	F64: 8, I64: 8, U64: 8,
}

// Size is the number of bytes of one element, or an error for an unknown dtype.
func (d DType) Size() (int, error) {
	s, ok := dtypeSizes[d]
	if !ok {
		return 0, fmt.Errorf("unknown safetensors dtype %q", string(d))
	}
	return s, nil
}

// TensorInfo describes one tensor of a file: its element type, its shape and where its
// bytes lie in the data section ([Begin, End), relative to the data section).
type TensorInfo struct {
	DType DType
	Shape []int
	Begin int64
	End   int64
}

// NumElements is the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int64 {
	return numElements(t.Shape)
}

func numElements(shape []int) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= int64(d)
	}
	return n
}
