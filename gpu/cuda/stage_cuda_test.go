//go:build t2mcuda

package cuda_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
)

// A Stager with 1 MiB buffers uploads byte slices of sizes around and across its buffers exactly (read back
// with Download), one after another through the same buffers, and refuses a source larger than the
// destination.
func TestStagerUploads(t *testing.T) {
	d := cudatest.Device(t)
	const chunk = 1 << 20
	s, err := d.NewStager(chunk)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	a := cudatest.Arena(t, d, 16<<20)
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, chunk - 1, chunk, 2*chunk + 5, 7*chunk + chunk/2} {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		dst, err := a.Alloc(int64(n), "dst")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Upload(dst, src); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		got := make([]byte, n)
		if err := cuda.Download(d, got, dst); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, src) {
			t.Errorf("%d bytes: the device copy differs", n)
		}
	}
	small, _ := a.Alloc(16, "small")
	if err := s.Upload(small, make([]byte, 17)); err == nil {
		t.Error("uploading 17 bytes into 16 succeeded")
	}
}

// Upload and Download of more than stagedMin bytes (through the device's Stager), of a typed slice, arrive
// exactly, twice through the same buffers.
func TestLargeCopiesAreStaged(t *testing.T) {
	d := cudatest.Device(t)
	a := cudatest.Arena(t, d, 256<<20)
	for round := range 2 {
		src := make([]uint16, (70<<20)/2+3) // 70 MiB + 6 bytes: two chunks of 64 MiB, the second partial
		for i := range src {
			src[i] = uint16(i*2654435761>>7) + uint16(round)
		}
		dst, err := a.Alloc(int64(len(src))*2, "dst")
		if err != nil {
			t.Fatal(err)
		}
		if err := cuda.Upload(d, dst, src); err != nil {
			t.Fatal(err)
		}
		got := make([]uint16, len(src))
		if err := cuda.Download(d, got, dst); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if got[i] != src[i] {
				t.Fatalf("round %d: value %d is %d, want %d", round, i, got[i], src[i])
			}
		}
	}
}
