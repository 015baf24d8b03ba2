package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/t2m/t2m/internal/atomicfile"
	"github.com/t2m/t2m/internal/bf16"
)

// Tensor is one tensor to write: little-endian row-major Data of len = elements × dtype size.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// dtypeRank orders dtypes as the Rust library's Dtype enum does; files list tensors by
// rank descending, then name, as safetensors.save_file does.
var dtypeRank = map[DType]int{
	Bool: 0, U8: 1, I8: 2, F8E5M2: 3, F8E4M3: 4, I16: 5, U16: 6, F16: 7, BF16: 8,
	I32: 9, U32: 10, F32: 11, F64: 12, I64: 13, U64: 14,
}

// WriteTo streams a safetensors image of tensors and metadata (may be nil) to w. The
// header is padded with spaces to a multiple of 8 bytes, as the Python library does.
func WriteTo(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	order := make([]int, len(tensors))
	seen := map[string]bool{}
	for i, t := range tensors {
		order[i] = i
		if t.Name == "" || t.Name == "__metadata__" {
			return fmt.Errorf("safetensors: write: bad tensor name %q", t.Name)
		}
		if seen[t.Name] {
			return fmt.Errorf("safetensors: write: tensor %q given twice", t.Name)
		}
		seen[t.Name] = true
		size, err := t.DType.Size()
		if err != nil {
			return fmt.Errorf("safetensors: write tensor %q: %w", t.Name, err)
		}
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("safetensors: write tensor %q: negative dimension in shape %v", t.Name, t.Shape)
			}
		}
		if want := numElements(t.Shape) * int64(size); int64(len(t.Data)) != want {
			return fmt.Errorf("safetensors: write tensor %q: %s %v needs %d bytes, got %d", t.Name, t.DType, t.Shape, want, len(t.Data))
		}
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := tensors[order[i]], tensors[order[j]]
		if ra, rb := dtypeRank[a.DType], dtypeRank[b.DType]; ra != rb {
			return ra > rb
		}
		return a.Name < b.Name
	})

	var hdr bytes.Buffer
	hdr.WriteByte('{')
	if len(metadata) > 0 {
		m, err := json.Marshal(metadata)
		if err != nil {
			return fmt.Errorf("safetensors: write metadata: %w", err)
		}
		hdr.WriteString(`"__metadata__":`)
		hdr.Write(m)
	}
	var off int64
	for k, i := range order {
		t := tensors[i]
		if k > 0 || len(metadata) > 0 {
			hdr.WriteByte(',')
		}
		name, _ := json.Marshal(t.Name)
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		sh, _ := json.Marshal(shape)
		fmt.Fprintf(&hdr, `%s:{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}`, name, t.DType, sh, off, off+int64(len(t.Data)))
		off += int64(len(t.Data))
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}

	bw := bufio.NewWriterSize(w, 1<<20)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(hdr.Len()))
	bw.Write(lenBuf[:])
	bw.Write(hdr.Bytes())
	for _, i := range order {
		if _, err := bw.Write(tensors[i].Data); err != nil {
			return fmt.Errorf("safetensors: write tensor %q: %w", tensors[i].Name, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	return nil
}

// Write writes a safetensors file atomically (internal/atomicfile): a temporary file in
// the same directory, fsync, rename over path, fsync of the directory. An interrupted
// Write leaves path as it was (and at worst a stray ".*.tmp-*" file).
func Write(path string, tensors []Tensor, metadata map[string]string) error {
	return WriteFileAtomic(path, func(w io.Writer) error { return WriteTo(w, tensors, metadata) })
}

// WriteFileAtomic creates path (mode 0644) through fill the way Write does; on any error
// path is left as it was and no temporary file remains. It is atomicfile.WriteFile.
func WriteFileAtomic(path string, fill func(io.Writer) error) error {
	return atomicfile.WriteFile(path, 0o644, fill)
}

// F32Bytes encodes float32 values little-endian.
func F32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// BF16Bytes rounds float32 values to bf16 (nearest, ties to even: bf16.FromFloat32) and encodes them.
func BF16Bytes(v []float32) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], bf16.FromFloat32(x))
	}
	return b
}

// F32Tensor builds an F32 tensor from Go values.
func F32Tensor(name string, shape []int, v []float32) Tensor {
	return Tensor{Name: name, DType: F32, Shape: shape, Data: F32Bytes(v)}
}

// BF16Tensor builds a BF16 tensor from float32 values, rounding to nearest even.
func BF16Tensor(name string, shape []int, v []float32) Tensor {
	return Tensor{Name: name, DType: BF16, Shape: shape, Data: BF16Bytes(v)}
}

// U8Tensor builds a U8 tensor (the bytes are not copied).
func U8Tensor(name string, shape []int, v []byte) Tensor {
	return Tensor{Name: name, DType: U8, Shape: shape, Data: v}
}
