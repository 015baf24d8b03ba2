//go:build t2mcuda

package cuda_test

import (
	"strings"
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
)

// An arena reserves a large range but holds on the device only what its buffers reached (rounded up to its
// growth step): the GPU's used memory grows by about that, not by the range. Its buffers are usable memory
// (a round trip through the last byte), and what does not fit is an error naming it.
func TestArenaCommitsWhatItUses(t *testing.T) {
	d := cudatest.Device(t)
	free0, _, err := d.MemInfo()
	if err != nil {
		t.Fatal(err)
	}
	const rng = 64 << 30 // far more than the test uses
	a, err := cuda.NewArena(d, min(rng, free0/2))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Free()
	b, err := a.Alloc(300<<20, "first") // past one 256 MiB growth step
	if err != nil {
		t.Fatal(err)
	}
	src := make([]float32, b.Bytes/4)
	for i := range src {
		src[i] = float32(i % 977)
	}
	if err := cuda.Upload(d, b, src); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, len(src))
	if err := cuda.Download(d, got, b); err != nil {
		t.Fatal(err)
	}
	if got[len(got)-1] != src[len(src)-1] || got[12345] != src[12345] {
		t.Fatalf("round trip: got %g, %g want %g, %g", got[len(got)-1], got[12345], src[len(src)-1], src[12345])
	}
	t.Logf("arena range %.1f GiB, committed %.3f GiB for a peak of %.3f GiB", cuda.GiB(a.Size()), cuda.GiB(a.Committed()), cuda.GiB(a.Peak()))
	if c := a.Committed(); c < a.Peak() || (c > a.Peak()+(512<<20) && c != a.Size()) {
		t.Errorf("committed %d bytes for a peak of %d (range %d)", c, a.Peak(), a.Size())
	}
	free1, _, _ := d.MemInfo()
	if used := free0 - free1; a.Committed() < a.Size() && used > a.Committed()+(256<<20) {
		t.Errorf("the GPU's used memory grew by %.2f GiB for %.2f GiB committed", cuda.GiB(used), cuda.GiB(a.Committed()))
	}
	if _, err := a.Alloc(a.Size(), "too big"); err == nil || !strings.Contains(err.Error(), "too big") {
		t.Errorf("an allocation past the range: %v", err)
	}
}
