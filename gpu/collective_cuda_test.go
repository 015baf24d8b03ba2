//go:build t2mcuda

package gpu

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/nccl"
	"gorgonia.org/cu"
)

// TestNCCLLoadMissingLibrary needs no GPU: without the library the error says what to do.
func TestNCCLLoadMissingLibrary(t *testing.T) {
	t.Setenv(nccl.EnvLib, "/nonexistent/libnccl.so.2")
	_, err := nccl.Load()
	if err == nil || !strings.Contains(err.Error(), "T2M_NCCL=/nonexistent/libnccl.so.2") {
		t.Fatalf("got %v, want an error naming T2M_NCCL=/nonexistent/libnccl.so.2", err)
	}
}

// twoGPUs returns NCCL, or skips the test without two GPUs or without NCCL.
func twoGPUs(t *testing.T) *nccl.Lib {
	t.Helper()
	n, err := cu.NumDevices()
	if err != nil || n < 2 {
		t.Skipf("needs 2 GPUs: %d visible (%v)", n, err)
	}
	lib, err := nccl.Load()
	if err != nil {
		t.Skipf("needs NCCL: %v", err)
	}
	t.Logf("NCCL %s from %s", lib.Version(), lib.Path)
	return lib
}

// ranks runs f(rank) for ranks 0 and 1 on GPUs 0 and 1, one goroutine (locked to its OS thread) each, with
// a cuda.Device of that GPU open and bound as the training backend's would be, and the rank's
// NCCLCollective; it returns the errors f returned.
func ranks(t *testing.T, lib *nccl.Lib, f func(r int, d *cuda.Device, c *NCCLCollective) error) [2]error {
	t.Helper()
	id, err := lib.UniqueID()
	if err != nil {
		t.Fatal(err)
	}
	var errs [2]error
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Go(func() {
			errs[r] = func() error {
				d, err := cuda.Open(r) // locks the thread, its own context current
				if err != nil {
					return err
				}
				defer d.Close()
				c, err := NewCollective(lib, r, r, 2, id, time.Minute)
				if err != nil {
					return err
				}
				defer c.Close()
				if cur, _ := cu.CurrentContext(); cur == c.ctx {
					return fmt.Errorf("rank %d: NewCollective left the primary context current", r)
				}
				return f(r, d, c)
			}()
		})
	}
	wg.Wait()
	return errs
}

// TestCollectiveNCCLDeviceBuffers: AllReduceDevice sums a buffer of each rank's own context (the training
// backend's gradient sum) and a few host values, exactly (integers), the same bits on both ranks, with the
// parts of the buffer beyond n untouched; at the 7B's LoRA size it logs its time.
func TestCollectiveNCCLDeviceBuffers(t *testing.T) {
	lib := twoGPUs(t)
	errs := ranks(t, lib, func(r int, d *cuda.Device, c *NCCLCollective) error {
		for _, n := range []int{1, 1000, 17_000_000} {
			buf, err := d.Alloc(int64(n+1) * 4)
			if err != nil {
				return err
			}
			v := make([]float32, n+1)
			for j := range v {
				v[j] = float32(j%4096 + 5000*r)
			}
			v[n] = -1 // beyond n: must stay
			for rep := range 2 {
				if err := cuda.Upload(d, buf, v); err != nil {
					return err
				}
				extra := []float32{float32(r + 1), float32(10 * r)}
				if err := c.AllReduceDevice(d, buf, n, extra); err != nil {
					return err
				}
				if extra[0] != 3 || extra[1] != 10 {
					return fmt.Errorf("rank %d, n %d: extra sums %v, want [3 10]", r, n, extra)
				}
				got := make([]float32, n+1)
				if err := cuda.Download(d, got, buf); err != nil {
					return err
				}
				for j := range n {
					if want := float32(2*(j%4096) + 5000); got[j] != want {
						return fmt.Errorf("rank %d, n %d, [%d]: got %v, want %v", r, n, j, got[j], want)
					}
				}
				if got[n] != -1 {
					return fmt.Errorf("rank %d, n %d: the value after the %d summed ones changed to %v", r, n, n, got[n])
				}
				if r == 0 && rep == 1 {
					t.Logf("device all-reduce of %d floats (%.1f MB): %v", n, float64(n)*4/1e6, c.LastAllReduce())
				}
			}
			if err := d.Free(buf); err != nil {
				return err
			}
		}
		return nil
	})
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
}

func TestCollectiveNCCLTwoGPUs(t *testing.T) {
	lib := twoGPUs(t)
	shapes := [][]int{{1}, {1000}, {5, 0, 1<<20 + 3}, {17_000_000}} // the last: the 7B's LoRA r=8 gradients
	var mu sync.Mutex
	got := [2][][][]float32{} // rank → shape → buffers
	errs := ranks(t, lib, func(r int, _ *cuda.Device, c *NCCLCollective) error {
		for s, shape := range shapes {
			bufs := make([][]float32, len(shape))
			for i, n := range shape {
				bufs[i] = make([]float32, n)
				for j := range bufs[i] {
					// integers below 2^24, so the sums are exact whatever the order
					bufs[i][j] = float32((j*7+i*13+s)%4096 + 5000*r)
				}
			}
			for rep := range 2 {
				if rep == 1 {
					for i := range bufs {
						for j := range bufs[i] {
							bufs[i][j] = float32((j*7+i*13+s)%4096 + 5000*r)
						}
					}
				}
				if err := c.AllReduceSum(bufs); err != nil {
					return err
				}
			}
			total := 0
			for _, n := range shape {
				total += n
			}
			if r == 0 {
				t.Logf("all-reduce of %d floats (%.1f MB): %v", total, float64(total)*4/1e6, c.LastAllReduce())
			}
			for i := range bufs {
				for j, v := range bufs[i] {
					want := float32(2*((j*7+i*13+s)%4096) + 5000)
					if v != want {
						return fmt.Errorf("rank %d shape %v buffer %d [%d]: got %v, want %v", r, shape, i, j, v, want)
					}
				}
			}
			mu.Lock()
			got[r] = append(got[r], bufs)
			mu.Unlock()
		}
		return nil
	})
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	for s := range shapes {
		for i := range got[0][s] {
			for j := range got[0][s][i] {
				if math.Float32bits(got[0][s][i][j]) != math.Float32bits(got[1][s][i][j]) {
					t.Fatalf("shape %v buffer %d [%d]: rank 0 has %v, rank 1 %v", shapes[s], i, j, got[0][s][i][j], got[1][s][i][j])
				}
			}
		}
	}
}

// TestCollectiveNCCLPeerNeverComes: rank 1 never calls AllReduceSum; rank 0's call must fail after its
// timeout instead of hanging.
func TestCollectiveNCCLPeerNeverComes(t *testing.T) {
	lib := twoGPUs(t)
	const timeout = 3 * time.Second
	rank0Done := make(chan struct{})
	var elapsed time.Duration
	errs := ranks(t, lib, func(r int, _ *cuda.Device, c *NCCLCollective) error {
		c.SetTimeout(timeout)
		if r == 1 {
			<-rank0Done // never joins the all-reduce; leaves once rank 0 gave up
			c.Abort()
			return nil
		}
		defer close(rank0Done)
		start := time.Now()
		err := c.AllReduceSum([][]float32{make([]float32, 4096)})
		elapsed = time.Since(start)
		if err == nil {
			return fmt.Errorf("AllReduceSum succeeded without rank 1")
		}
		if !strings.Contains(err.Error(), "did not finish within") {
			return fmt.Errorf("got %v, want the timeout error", err)
		}
		t.Logf("rank 0 after %v: %v", elapsed, err)
		if err := c.AllReduceSum([][]float32{make([]float32, 4)}); err == nil || !strings.Contains(err.Error(), "aborted") {
			return fmt.Errorf("after the timeout: got %v, want an error saying the communicator was aborted", err)
		}
		return nil
	})
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	if elapsed > timeout+30*time.Second {
		t.Fatalf("rank 0 gave up after %v with a timeout of %v", elapsed, timeout)
	}
}

// TestPackUnpack: the all-reduce's staging copy on several cores puts every buffer at its offset and back,
// for sizes that straddle the workers' ranges.
func TestPackUnpack(t *testing.T) {
	sizes := []int{0, 1, 3, 1 << 18, 5, 151552, 28672, 1<<19 + 7, 2}
	var bufs [][]float32
	n := 0
	for i, sz := range sizes {
		b := make([]float32, sz)
		for j := range b {
			b[j] = float32(i*1000003 + j)
		}
		bufs = append(bufs, b)
		n += sz
	}
	flat := make([]float32, n)
	packUnpack(flat, bufs, true)
	off := 0
	for i, b := range bufs {
		for j, x := range b {
			if flat[off+j] != x {
				t.Fatalf("pack: buffer %d value %d at %d is %v, want %v", i, j, off+j, flat[off+j], x)
			}
		}
		off += len(b)
	}
	back := make([][]float32, len(bufs))
	for i, b := range bufs {
		back[i] = make([]float32, len(b))
	}
	packUnpack(flat, back, false)
	for i := range bufs {
		for j := range bufs[i] {
			if back[i][j] != bufs[i][j] {
				t.Fatalf("unpack: buffer %d value %d is %v, want %v", i, j, back[i][j], bufs[i][j])
			}
		}
	}
}
