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
