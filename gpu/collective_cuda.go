//go:build t2mcuda

package gpu

// #cgo LDFLAGS: -lcuda
// #cgo CFLAGS: -I/usr/include -I/usr/local/cuda/include
// #include <cuda.h>
// static int t2m_host_alloc(void** p, size_t bytes) {
//   return (int)cuMemHostAlloc(p, bytes, CU_MEMHOSTALLOC_PORTABLE);
// }
// static int t2m_host_free(void* p) { return (int)cuMemFreeHost(p); }
import "C"

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/nccl"
	"github.com/t2m/t2m/internal/rendezvous"
	"github.com/t2m/t2m/train"
	"gorgonia.org/cu"
)

// NCCLCollective is train.Collective over NCCL: one rank of a data-parallel run, one process (or, in
// tests, one goroutine) per GPU. AllReduceSum packs the buffers into one pinned host buffer, copies it to
// the device, runs one ncclAllReduce (sum, float32) and copies the sums back.
//
// It works in the device's primary context, not in a context of its own (cuda.Open's): NCCL's init
// thread selects the device with cudaSetDevice, which makes the primary context current, so the
// communicator's memory and kernels live there, and the stream and buffers given to NCCL must too. Each
// call makes that context current on its (locked) OS thread and restores the caller's context before
// returning, so it can be called between a cuda.Device's operations on the same goroutine.
type NCCLCollective struct {
	rank, world, ordinal int
	lib                  *nccl.Lib
	comm                 *nccl.Comm
	dev                  cu.Device
	ctx                  cu.CUContext // the device's primary context, retained
	stream               cu.Stream

	dbuf  cu.DevicePtr   // [dcap/4] float32 on the device
	dcap  int64          // bytes
	host  unsafe.Pointer // pinned, [hcap/4] float32
	hcap  int64          // bytes
	last  time.Duration
	ready bool // the primary context is retained (Close releases it)
}

var _ train.Collective = (*NCCLCollective)(nil)

// DeviceOrdinal is the GPU a rank with local rank localRank uses: localRank, or 0 when a launcher gave each
// process its own single GPU (CUDA_VISIBLE_DEVICES set, one GPU visible). More ranks than GPUs is an error,
// not two ranks on one GPU.
func DeviceOrdinal(localRank int) (int, error) {
	n, err := cu.NumDevices()
	if err != nil {
		return 0, fmt.Errorf("gpu: no usable NVIDIA GPU (%v)", err)
	}
	switch {
	case n == 1 && os.Getenv("CUDA_VISIBLE_DEVICES") != "":
		return 0, nil
	case localRank < 0 || localRank >= n:
		return 0, fmt.Errorf("gpu: local rank %d needs GPU %d, but %d GPUs are visible; start one process per "+
			"GPU (LOCAL_RANK 0..%d)", localRank, localRank, n, n-1)
	}
	return localRank, nil
}

// JoinFromEnv joins the run e describes (rendezvous.FromEnv): it loads NCCL first (so that a machine
// without it fails before waiting for peers), creates NCCL's unique id on rank 0 and hands it to the
// other ranks with rendezvous.Exchange, then initializes this rank's communicator on GPU
// DeviceOrdinal(e.LocalRank). timeout bounds the rendezvous and the init each; the all-reduces wait at
// most nccl.Timeout() (T2M_NCCL_TIMEOUT, 10 minutes by default).
func JoinFromEnv(e rendezvous.Env, timeout time.Duration) (*NCCLCollective, error) {
	lib, err := nccl.Load()
	if err != nil {
		return nil, err
	}
	opTimeout, err := nccl.Timeout()
	if err != nil {
		return nil, err
	}
	ordinal, err := DeviceOrdinal(e.LocalRank)
	if err != nil {
		return nil, err
	}
	var id nccl.UniqueID
	if e.Rank == 0 {
		if id, err = lib.UniqueID(); err != nil {
			return nil, err
		}
	}
	got, err := rendezvous.Exchange(context.Background(), e, id[:], timeout)
	if err != nil {
		return nil, err
	}
	if len(got) != len(id) {
		return nil, fmt.Errorf("gpu: rank 0 sent an NCCL id of %d bytes, want %d: run the same t2m on every rank", len(got), len(id))
	}
	copy(id[:], got)
	c, err := NewCollective(lib, ordinal, e.Rank, e.World, id, timeout)
	if err != nil {
		return nil, err
	}
	c.comm.Timeout = opTimeout
	return c, nil
}

// NewCollective initializes rank of a world of ranks on GPU ordinal, joining the communicator id names
// (every rank passes the same id, from rank 0's lib.UniqueID). It returns once all ranks joined, or
// after timeout with an error; the communicator's later waits also use timeout (change it with
// SetTimeout).
func NewCollective(lib *nccl.Lib, ordinal, rank, world int, id nccl.UniqueID, timeout time.Duration) (*NCCLCollective, error) {
	c := &NCCLCollective{rank: rank, world: world, ordinal: ordinal, lib: lib}
	var err error
	if c.dev, err = cu.GetDevice(ordinal); err != nil {
		return nil, fmt.Errorf("gpu: device %d: %w", ordinal, err)
	}
	if c.ctx, err = c.dev.RetainPrimaryCtx(); err != nil {
		return nil, fmt.Errorf("gpu: the primary context of device %d: %w", ordinal, err)
	}
	c.ready = true
	restore, err := c.bind()
	if err != nil {
		c.dev.ReleasePrimaryCtx()
		return nil, err
	}
	defer restore()
	if c.stream, err = cu.MakeStream(cu.NonBlocking); err != nil {
		c.dev.ReleasePrimaryCtx()
		return nil, fmt.Errorf("gpu: a stream for NCCL on device %d: %w", ordinal, err)
	}
	if c.comm, err = lib.InitRank(world, rank, id, timeout); err != nil {
		_ = c.stream.Destroy()
		c.dev.ReleasePrimaryCtx()
		return nil, fmt.Errorf("gpu: joining the NCCL communicator as rank %d of %d on device %d: %w", rank, world, ordinal, err)
	}
	return c, nil
}

// bind locks the goroutine to its OS thread and makes the primary context current there; restore puts
// back the caller's context and unlocks (the caller's own lock, if any, stays).
func (c *NCCLCollective) bind() (restore func(), err error) {
	runtime.LockOSThread()
	prev, err := cu.CurrentContext()
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("gpu: the current CUDA context: %w", err)
	}
	if err := cu.SetCurrentContext(c.ctx); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("gpu: making the primary context of device %d current: %w", c.ordinal, err)
	}
	return func() {
		_ = cu.SetCurrentContext(prev)
		runtime.UnlockOSThread()
	}, nil
}

// Rank is this replica's index.
func (c *NCCLCollective) Rank() int { return c.rank }

// Size is the number of ranks.
func (c *NCCLCollective) Size() int { return c.world }

// Ordinal is the GPU this rank uses.
func (c *NCCLCollective) Ordinal() int { return c.ordinal }

// NCCL says which NCCL this rank uses, as "NCCL 2.27.7 (/path/libnccl.so.2)".
func (c *NCCLCollective) NCCL() string {
	return fmt.Sprintf("NCCL %s (%s)", c.lib.Version(), c.lib.Path)
}

// SetTimeout changes how long an all-reduce may wait for the other ranks.
func (c *NCCLCollective) SetTimeout(d time.Duration) { c.comm.Timeout = d }

// LastAllReduce is the wall time of the last AllReduceSum: packing, the copies both ways and the NCCL
// all-reduce (which includes waiting for the slowest rank to arrive).
func (c *NCCLCollective) LastAllReduce() time.Duration { return c.last }

// AllReduceSum replaces each buffer with its sum over all ranks (train.Collective). Every rank must pass
// the same lengths in the same order; a rank that never comes makes it fail after the timeout.
func (c *NCCLCollective) AllReduceSum(bufs [][]float32) error {
	start := time.Now()
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	if n == 0 {
		return nil
	}
	restore, err := c.bind()
	if err != nil {
		return err
	}
	defer restore()
	bytes := int64(n) * 4
	if err := c.grow(bytes, bytes); err != nil {
		return err
	}
	flat := unsafe.Slice((*float32)(c.host), n)
	packUnpack(flat, bufs, true)
	if err := cu.MemcpyHtoDAsync(c.dbuf, c.host, bytes, c.stream); err != nil {
		return fmt.Errorf("gpu: rank %d: copying %d gradients to device %d: %w", c.rank, n, c.ordinal, err)
	}
	if err := c.comm.AllReduceSumF32(c.dbuf, n, c.stream); err != nil {
		return fmt.Errorf("gpu: rank %d: %w", c.rank, err)
	}
	if err := cu.MemcpyDtoHAsync(c.host, c.dbuf, bytes, c.stream); err != nil {
		return fmt.Errorf("gpu: rank %d: copying %d sums from device %d: %w", c.rank, n, c.ordinal, err)
	}
	if err := c.stream.Synchronize(); err != nil {
		return fmt.Errorf("gpu: rank %d: all-reduce on device %d: %w", c.rank, c.ordinal, err)
	}
	packUnpack(flat, bufs, false)
	c.last = time.Since(start)
	return nil
}

// AllReduceDevice replaces sum [n] fp32, a buffer of d (a training backend's gradient sum, in d's own
// context), and extra (a few host values: the loss, the stop requests) with their sums over all ranks,
// without the host: sum is copied into NCCL's buffer in the primary context (cuMemcpyPeer between the two
// contexts of one GPU), extra after it, one ncclAllReduce runs over both, and the sums are copied back. It
// waits for d's stream first. Every rank must pass the same n and len(extra).
func (c *NCCLCollective) AllReduceDevice(d *cuda.Device, sum cuda.Buffer, n int, extra []float32) error {
	start := time.Now()
	bytes := int64(n) * 4
	if n <= 0 || sum.Bytes < bytes {
		return fmt.Errorf("gpu: rank %d: all-reduce of %d values in a %d-byte buffer", c.rank, n, sum.Bytes)
	}
	if err := d.Sync(); err != nil { // the micro-batches' gradients are in sum
		return err
	}
	restore, err := c.bind()
	if err != nil {
		return err
	}
	defer restore()
	ebytes := int64(len(extra)) * 4
	if err := c.grow(ebytes, bytes+ebytes); err != nil {
		return err
	}
	if err := cu.MemcpyPeerAsync(c.dbuf, c.ctx, sum.Ptr, d.Context(), bytes, c.stream); err != nil {
		return fmt.Errorf("gpu: rank %d: copying %d gradients to the all-reduce buffer on device %d: %w", c.rank, n, c.ordinal, err)
	}
	tail := c.dbuf + cu.DevicePtr(bytes)
	host := unsafe.Slice((*float32)(c.host), len(extra))
	if ebytes > 0 {
		copy(host, extra)
		if err := cu.MemcpyHtoDAsync(tail, c.host, ebytes, c.stream); err != nil {
			return fmt.Errorf("gpu: rank %d: copying %d values to device %d: %w", c.rank, len(extra), c.ordinal, err)
		}
	}
	if err := c.comm.AllReduceSumF32(c.dbuf, n+len(extra), c.stream); err != nil {
		return fmt.Errorf("gpu: rank %d: %w", c.rank, err)
	}
	if err := cu.MemcpyPeerAsync(sum.Ptr, d.Context(), c.dbuf, c.ctx, bytes, c.stream); err != nil {
		return fmt.Errorf("gpu: rank %d: copying %d sums back on device %d: %w", c.rank, n, c.ordinal, err)
	}
	if ebytes > 0 {
		if err := cu.MemcpyDtoHAsync(c.host, tail, ebytes, c.stream); err != nil {
			return fmt.Errorf("gpu: rank %d: copying %d sums from device %d: %w", c.rank, len(extra), c.ordinal, err)
		}
	}
	if err := c.stream.Synchronize(); err != nil {
		return fmt.Errorf("gpu: rank %d: all-reduce on device %d: %w", c.rank, c.ordinal, err)
	}
	copy(extra, host)
	c.last = time.Since(start)
	return nil
}

// packUnpack copies bufs, one after the other, into flat (pack) or flat back into bufs, on all cores: at the
// 7B LoRA size (17M floats, 68 MB) one core's copy took about 7 ms each way, as long as the PCIe copies and
// the NVLink all-reduce together.
func packUnpack(flat []float32, bufs [][]float32, pack bool) {
	workers := min(runtime.GOMAXPROCS(0), 16, max(1, len(flat)>>18)) // ≥ 256Ki floats per worker
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() { // worker w copies the w-th 1/workers of flat's range
			defer wg.Done()
			lo, hi := len(flat)*w/workers, len(flat)*(w+1)/workers
			off := 0
			for _, b := range bufs {
				from, to := max(lo, off), min(hi, off+len(b))
				if from < to {
					if pack {
						copy(flat[from:to], b[from-off:to-off])
					} else {
						copy(b[from-off:to-off], flat[from:to])
					}
				}
				off += len(b)
			}
		}()
	}
	wg.Wait()
}

// grow makes the pinned host buffer hold at least hostBytes and the device buffer devBytes (with the
// primary context current).
func (c *NCCLCollective) grow(hostBytes, devBytes int64) error {
	if bytes := hostBytes; bytes > c.hcap {
		if c.host != nil {
			C.t2m_host_free(c.host)
			c.host, c.hcap = nil, 0
		}
		var p unsafe.Pointer
		if r := C.t2m_host_alloc(&p, C.size_t(bytes)); r != 0 {
			return fmt.Errorf("gpu: rank %d: allocating %d bytes of pinned host memory for the all-reduce: CUresult %d", c.rank, bytes, int(r))
		}
		c.host, c.hcap = p, bytes
	}
	if bytes := devBytes; bytes > c.dcap {
		if c.dcap > 0 {
			_ = cu.MemFree(c.dbuf)
			c.dbuf, c.dcap = 0, 0
		}
		p, err := cu.MemAlloc(bytes)
		if err != nil {
			return fmt.Errorf("gpu: rank %d: allocating %d bytes on device %d for the all-reduce: %w", c.rank, bytes, c.ordinal, err)
		}
		c.dbuf, c.dcap = p, bytes
	}
	return nil
}

// Abort ends the communicator at once (the other ranks' next all-reduce fails); Close still frees the rest.
func (c *NCCLCollective) Abort() {
	if c.comm != nil {
		c.comm.Abort()
	}
}

// Close leaves the group (ncclCommFinalize and ncclCommDestroy, or an abort when the other ranks do not
// finish within the timeout) and frees the buffers, the stream and this rank's hold on the primary context.
func (c *NCCLCollective) Close() error {
	if !c.ready {
		return nil
	}
	restore, err := c.bind()
	if err != nil {
		return err
	}
	defer restore()
	var first error
	if c.comm != nil {
		first = c.comm.Destroy()
	}
	if c.dcap > 0 {
		if err := cu.MemFree(c.dbuf); err != nil && first == nil {
			first = fmt.Errorf("gpu: freeing the all-reduce buffer: %w", err)
		}
		c.dbuf, c.dcap = 0, 0
	}
	if c.host != nil {
		C.t2m_host_free(c.host)
		c.host, c.hcap = nil, 0
	}
	_ = c.stream.Destroy()
	_ = c.dev.ReleasePrimaryCtx()
	c.ready = false
	return first
}
