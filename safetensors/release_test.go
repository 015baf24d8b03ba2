package safetensors

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Release drops a tensor's pages but not its data: the bytes read again after it are the same, other
// tensors are untouched, and an unknown name is an error.
func TestReleaseKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	big := make([]float32, 3*os.Getpagesize()) // several whole pages
	for i := range big {
		big[i] = float32(i%1013) - 500
	}
	small := []float32{1, 2, 3}
	if err := Write(path, []Tensor{{Name: "big", DType: F32, Shape: []int{len(big)}, Data: F32Bytes(big)},
		{Name: "small", DType: F32, Shape: []int{3}, Data: F32Bytes(small)}}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r Reader = f
	rel, ok := r.(Releaser)
	if !ok {
		t.Fatal("File is not a Releaser")
	}
	before, err := f.Float32("big")
	if err != nil {
		t.Fatal(err)
	}
	if err := rel.Release("big"); err != nil {
		t.Fatal(err)
	}
	after, err := f.Float32("big")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, after) || !slices.Equal(after, big) {
		t.Error("the tensor changed after Release")
	}
	if got, _ := f.Float32("small"); !slices.Equal(got, small) {
		t.Errorf("another tensor after Release: %v", got)
	}
	if err := rel.Release("nope"); err == nil {
		t.Error("releasing an unknown tensor succeeded")
	}
}

// Float32 of a tensor larger than one conversion chunk (bf16, an odd count past the chunk) gives every value,
// chunk boundary included, and the values read back after it dropped the pages are the same; an empty tensor
// converts to nothing.
func TestFloat32InChunks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	n := float32Chunk + 5
	raw := make([]byte, 2*n)
	for i := range n {
		v := uint16(0x3f80 + i%97) // bf16 around 1
		raw[2*i], raw[2*i+1] = byte(v), byte(v>>8)
	}
	if err := Write(path, []Tensor{{Name: "big", DType: BF16, Shape: []int{n}, Data: raw},
		{Name: "empty", DType: BF16, Shape: []int{0}, Data: nil}}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := f.Float32("big")
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, n)
	if err := DecodeFloat32(BF16, raw, want); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("value %d (chunk %d) is %v, want %v", i, i/float32Chunk, got[i], want[i])
			}
		}
	}
	again, err := f.Raw("big")
	if err != nil || !slices.Equal(again, raw) {
		t.Fatalf("the bytes after the pages were dropped differ (%v)", err)
	}
	if e, err := f.Float32("empty"); err != nil || len(e) != 0 {
		t.Fatalf("empty tensor: %v, %v", e, err)
	}
}
