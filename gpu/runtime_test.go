//go:build t2mcuda

package gpu

import (
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

var (
	testDev     *Device
	testDevErr  error
	testDevOnce sync.Once
)

// device returns the shared test device bound to the calling goroutine, or skips the test with the reason
// when there is no usable GPU.
func device(t testing.TB) *Device {
	t.Helper()
	testDevOnce.Do(func() { testDev, testDevErr = Open(0) })
	if testDevErr != nil {
		t.Skipf("no GPU: %v", testDevErr)
	}
	if err := testDev.Bind(); err != nil {
		t.Fatal(err)
	}
	return testDev
}

// arena returns a fresh arena of bytes from the test device, freed when the test ends.
func arena(t testing.TB, d *Device, bytes int64) *Arena {
	t.Helper()
	a, err := NewArena(d, bytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Free(a.base); err != nil {
			t.Error(err)
		}
	})
	return a
}

func TestOpenNames(t *testing.T) {
	d := device(t)
	t.Logf("GPU: %s, %d MiB, compute capability %d.%d", d.Name, d.TotalMB, d.CC[0], d.CC[1])
	if d.Name == "" || d.TotalMB <= 0 {
		t.Errorf("device name %q, %d MiB", d.Name, d.TotalMB)
	}
}

func TestArena(t *testing.T) {
	d := device(t)
	a := arena(t, d, 1<<20)
	x, err := a.Alloc(1000, "x")
	if err != nil {
		t.Fatal(err)
	}
	m := a.Mark()
	y, err := a.Alloc(3000, "y")
	if err != nil {
		t.Fatal(err)
	}
	if y.Ptr%arenaAlign != 0 || y.Ptr < x.Ptr+1000 {
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
	if err := Upload(d, x, src); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, len(src))
	if err := Download(d, got, x); err != nil {
		t.Fatal(err)
	}
	for i := range src {
		if got[i] != src[i] {
			t.Fatalf("round trip [%d]: %v, want %v", i, got[i], src[i])
		}
	}
}

func TestPinnedHost(t *testing.T) {
	d := device(t)
	h, err := d.AllocHost(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	for i := range h.Bytes {
		h.Bytes[i] = byte(i * 7)
	}
	a := arena(t, d, 1<<16)
	b, _ := a.Alloc(1<<16, "b")
	if err := Upload(d, b, h.Bytes); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1<<16)
	if err := Download(d, got, b); err != nil {
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

// TestRandomFills checks the fill kernels against their CPU twins, bit for bit, on poisoned buffers.
func TestRandomFills(t *testing.T) {
	d := device(t)
	a := arena(t, d, 1<<22)
	const n = 100_003
	b, _ := a.Alloc(2*n, "fill")
	for _, seed := range []uint64{1, 0xdeadbeef12345} {
		if err := d.Memset(b, 0xAB); err != nil {
			t.Fatal(err)
		}
		if err := d.FillRandomU8(b.Slice(0, n), seed); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, n+1)
		if err := Download(d, got, b); err != nil {
			t.Fatal(err)
		}
		want := RandomU8CPU(n, seed)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("fill_random_u8 seed %d [%d] = %d, want %d", seed, i, got[i], want[i])
			}
		}
		if got[n] != 0xAB {
			t.Errorf("fill_random_u8 wrote past its end")
		}
		if err := d.FillRandomBF16(b, n, seed, 0.5); err != nil {
			t.Fatal(err)
		}
		gotb := make([]uint16, n)
		if err := Download(d, gotb, b); err != nil {
			t.Fatal(err)
		}
		wantb := RandomBF16CPU(n, seed, 0.5)
		for i := range wantb {
			if gotb[i] != wantb[i] {
				t.Fatalf("fill_random_bf16 seed %d [%d] = %#x, want %#x", seed, i, gotb[i], wantb[i])
			}
		}
	}
}

func TestLaunchErrors(t *testing.T) {
	d := device(t)
	k, err := d.Kernel("nf4", "fill_random_u8")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Launch(k, D1(0), D1(256), 0); err == nil {
		t.Error("empty grid launched")
	}
	if err := d.Launch(k, D1(1), D1(256), 0, "text"); err == nil {
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
	d, err := Open(0)
	if err == nil {
		d.Close()
		t.Skip("a GPU is present; this test checks the message given without one")
	}
	for _, want := range []string{"no usable NVIDIA GPU", "cuInit", "CPU build"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open without a GPU: %q does not mention %q", err, want)
		}
	}
	if _, err := Get(); err != nil {
		t.Errorf("the t2mcuda build registered no backend: %v", err)
	}
}
