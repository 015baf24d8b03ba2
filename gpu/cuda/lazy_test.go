//go:build t2mcuda

package cuda

import "testing"

// TestSM90BuildOnly checks that on a Hopper card a kernel of a file with an sm_90 build loads that build
// alone (the sm_80 module, which the driver would JIT-compile at load, is not), that launches with PDL run
// from it, and that the first launch without PDL loads the file's own build and runs from that. Both launches
// compute the same sums.
func TestSM90BuildOnly(t *testing.T) {
	d, err := Open(0)
	if err != nil {
		t.Skipf("no GPU: %v", err)
	}
	defer func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	}()
	if d.CC[0] < 9 {
		t.Skipf("%s has compute capability %d.%d: no sm_90 build to load alone", d.Name, d.CC[0], d.CC[1])
	}
	k, err := d.Kernel("residual", "residual_add_bf16")
	if err != nil {
		t.Fatal(err)
	}
	loaded := func(file string) bool { _, ok := d.modules[file]; return ok }
	if !loaded("residual_sm90") || loaded("residual") {
		t.Fatalf("after Kernel: residual_sm90 loaded %v, residual loaded %v; want only the sm_90 build",
			loaded("residual_sm90"), loaded("residual"))
	}
	ar, err := NewArena(d, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ar.Free() }()
	const n = 8 * 300 // bf16 values: 300 groups of 8
	a, b := make([]float32, n), make([]float32, n)
	for i := range a {
		a[i], b[i] = float32(i%97)/8, float32(i%13)-6
	}
	bufs := make([]Buffer, 3)
	for i := range bufs {
		if bufs[i], err = ar.Alloc(n*2, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := UploadBF16(d, bufs[1], a); err != nil {
		t.Fatal(err)
	}
	if err := UploadBF16(d, bufs[2], b); err != nil {
		t.Fatal(err)
	}
	run := func(pdl bool) {
		t.Helper()
		if err := d.Memset(bufs[0], 0); err != nil {
			t.Fatal(err)
		}
		d.PDL = pdl
		err := d.Launch(k, Dim3{X: 2, Y: 1, Z: 1}, Dim3{X: 256, Y: 1, Z: 1}, 0, bufs[0], bufs[1], bufs[2], int64(n/8))
		d.PDL = false
		if err != nil {
			t.Fatal(err)
		}
		got, want := make([]uint16, n), make([]uint16, n)
		if err := Download(d, got, bufs[0]); err != nil {
			t.Fatal(err)
		}
		sum := make([]float32, n)
		for i := range sum {
			sum[i] = a[i] + b[i] // a and b are exact in bf16, and so is their sum
		}
		RoundBF16(want, sum)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("PDL %v: y[%d] = %#04x, want %#04x (%v)", pdl, i, got[i], want[i], sum[i])
			}
		}
	}
	before := d.PDLLaunches()
	run(true)
	if d.PDLLaunches() != before+1 || loaded("residual") {
		t.Errorf("after a PDL launch: %d PDL launches (want %d), residual loaded %v (want false)",
			d.PDLLaunches(), before+1, loaded("residual"))
	}
	run(false)
	if d.PDLLaunches() != before+1 || !loaded("residual") {
		t.Errorf("after a launch without PDL: %d PDL launches (want %d), residual loaded %v (want true)",
			d.PDLLaunches(), before+1, loaded("residual"))
	}
}
