//go:build t2mcuda

package cuda_test

import (
	"testing"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/cuda/cudatest"
)

// TestGraphCaptureReplay captures two launches of residual_add_f32 (acc += one, twice) into a Graph: the
// capture itself changes nothing, each of three replays adds 2, and a capture of a synchronous upload fails
// with an error and leaves the stream usable (an eager launch after it runs).
func TestGraphCaptureReplay(t *testing.T) {
	d := cudatest.Device(t)
	const n = 4096
	a := cudatest.Arena(t, d, 2*n*4+1<<12)
	acc, _ := a.Alloc(n*4, "acc")
	one, _ := a.Alloc(n*4, "one")
	ones := make([]float32, n)
	for i := range ones {
		ones[i] = 1
	}
	if err := cuda.Upload(d, one, ones); err != nil {
		t.Fatal(err)
	}
	if err := d.Memset(acc, 0); err != nil {
		t.Fatal(err)
	}
	k, err := d.Kernel("residual", "residual_add_f32")
	if err != nil {
		t.Fatal(err)
	}
	add := func() error {
		return d.Launch(k, cuda.Dim3{X: n / 4 / 256, Y: 1, Z: 1}, cuda.Dim3{X: 256, Y: 1, Z: 1}, 0, acc, acc, one,
			int64(n/4))
	}
	g, err := d.Capture(func() error {
		if err := add(); err != nil {
			return err
		}
		return add()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	check := func(when string, want float32) {
		t.Helper()
		got := make([]float32, n)
		if err := cuda.Download(d, got, acc); err != nil {
			t.Fatal(err)
		}
		for i, v := range got {
			if v != want {
				t.Fatalf("%s: acc[%d] = %g, want %g", when, i, v, want)
			}
		}
	}
	check("after the capture", 0)
	for r := 1; r <= 3; r++ {
		if err := d.Replay(g); err != nil {
			t.Fatal(err)
		}
	}
	check("after three replays", 6)
	if _, err := d.Capture(func() error { return cuda.Upload(d, one, ones) }); err == nil {
		t.Error("capturing a synchronous upload succeeded")
	}
	if err := add(); err != nil {
		t.Fatal(err)
	}
	check("after the failed capture and one eager add", 7)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Replay(g); err == nil {
		t.Error("replaying a closed graph succeeded")
	}
}
