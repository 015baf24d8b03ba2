//go:build t2mcuda

package cuda_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
)

func TestOpenNames(t *testing.T) {
	d := cudatest.Device(t)
	t.Logf("GPU: %s, %d MiB, compute capability %d.%d", d.Name, d.TotalMB, d.CC[0], d.CC[1])
	if d.Name == "" || d.TotalMB <= 0 {
		t.Errorf("device name %q, %d MiB", d.Name, d.TotalMB)
	}
}

func TestArena(t *testing.T) {
	d := cudatest.Device(t)
	a := cudatest.Arena(t, d, 1<<20)
	x, err := a.Alloc(1000, "x")
	if err != nil {
		t.Fatal(err)
	}
	m := a.Mark()
	y, err := a.Alloc(3000, "y")
	if err != nil {
		t.Fatal(err)
	}
	if y.Ptr%cuda.Align != 0 || y.Ptr < x.Ptr+1000 {
		t.Errorf("y at %v after x at %v: not aligned or overlapping", y.Ptr, x.Ptr)
	}
	a.Release(m)
	z, _ := a.Alloc(10, "z")
	if z.Ptr != y.Ptr {
		t.Errorf("after Release, z at %v, want y's %v", z.Ptr, y.Ptr)
	}
	if a.Peak() != 256*4+3000 {
		t.Errorf("peak %d, want %d", a.Peak(), 256*4+3000)
	}
	if _, err := a.Alloc(2<<20, "too big"); err == nil || !strings.Contains(err.Error(), "too big") {
		t.Errorf("oversized alloc: %v", err)
	}
	// Round trip through device memory.
	src := make([]float32, 250)
	for i := range src {
		src[i] = rand.Float32()
	}
	if err := cuda.Upload(d, x, src); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, len(src))
	if err := cuda.Download(d, got, x); err != nil {
		t.Fatal(err)
	}
	for i := range src {
		if got[i] != src[i] {
			t.Fatalf("round trip [%d]: %v, want %v", i, got[i], src[i])
		}
	}
}

func TestPinnedHost(t *testing.T) {
	d := cudatest.Device(t)
	h, err := d.AllocHost(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	for i := range h.Bytes {
		h.Bytes[i] = byte(i * 7)
	}
	a := cudatest.Arena(t, d, 1<<16)
	b, _ := a.Alloc(1<<16, "b")
	if err := cuda.Upload(d, b, h.Bytes); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1<<16)
	if err := cuda.Download(d, got, b); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != byte(i*7) {
			t.Fatalf("pinned round trip [%d] = %d", i, got[i])
		}
	}
	if err := d.FreeHost(h); err != nil {
		t.Fatal(err)
	}
}

func TestLaunchErrors(t *testing.T) {
	d := cudatest.Device(t)
	k, err := d.Kernel("nf4", "fill_random_u8")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Launch(k, cuda.Dim3{X: 0, Y: 1, Z: 1}, cuda.Dim3{X: 256, Y: 1, Z: 1}, 0); err == nil {
		t.Error("empty grid launched")
	}
	if err := d.Launch(k, cuda.Dim3{X: 1, Y: 1, Z: 1}, cuda.Dim3{X: 256, Y: 1, Z: 1}, 0, "text"); err == nil {
		t.Error("string argument accepted")
	}
	if _, err := d.Kernel("nf4", "no_such_kernel"); err == nil {
		t.Error("missing kernel found")
	}
	if err := k.SetMaxDynamicSmem(64 << 10); err != nil {
		t.Errorf("raising dynamic shared memory to 64 KB: %v", err)
	}
}

// TestNoGPUError runs where there is no usable GPU (CI): the t2mcuda build must get there at all (cu's init
// did not exit, thanks to the cuInit interposer) and Open must say what is wrong and what to do.
func TestNoGPUError(t *testing.T) {
	d, err := cuda.Open(0)
	if err == nil {
		d.Close()
		t.Skip("a GPU is present; this test checks the message given without one")
	}
	for _, want := range []string{"no usable NVIDIA GPU", "cuInit", "CPU build"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open without a GPU: %q does not mention %q", err, want)
		}
	}
}
