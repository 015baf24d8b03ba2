//go:build t2mcuda

package cuda

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/t2m/t2m/kernels"
	"gorgonia.org/cu"
)

// Dim3 is a CUDA grid or block shape.
type Dim3 struct{ X, Y, Z int }

// Device is one CUDA device: its context, the stream all work goes to, the loaded kernel modules and the
// device memory it handed out. Use a Device from one goroutine at a time, after Bind.
type Device struct {
	Ordinal int
	Name    string
	TotalMB int64
	CC      [2]int // compute capability

	// PDL makes launches of kernels that have an sm_90 build (kernels.SM90) use it with programmatic dependent
	// launch on a Hopper card: each may start while the kernel before it on its stream finishes, and waits for
	// it inside (kernels/pdl.cuh). The decoder sets it around its forwards; kernels without such a build, and
	// older cards, launch as usual.
	PDL         bool
	pdlLaunches int

	dev    cu.Device
	ctx    cu.CUContext
	Stream cu.Stream

	mu      sync.Mutex
	modules map[string]cu.Module
	kernels map[string]*Kernel
	blas    *BLAS

	allocated, peak int64 // bytes from Alloc, now and at most

	// stager holds the pinned buffers large uploads go through (Upload), made on first use; stageErr is
	// why it could not be made (those uploads then go straight from pageable memory).
	stageMu  sync.Mutex
	stager   *Stager
	stageErr error
}

// Kernel is one __global__ function of an embedded PTX module.
type Kernel struct {
	Name       string
	file, name string
	fn         cu.Function
	// sm90 is the same kernel from the file's sm_90 build (kernels.SM90), loaded by the first launch with
	// Device.PDL; sm90Err says why there is none (the card is older, or the file has no such build).
	sm90    cu.Function
	sm90Err error
	sm90Got bool
	maxSmem int // SetMaxDynamicSmem's bytes, for sm90 too
}

// Count is the number of GPUs this process sees, or why none can be used.
func Count() (int, error) {
	if err := initStatus(); err != nil {
		return 0, fmt.Errorf("gpu: no usable NVIDIA GPU (%v)", err)
	}
	n, err := cu.NumDevices()
	if err != nil {
		return 0, fmt.Errorf("gpu: counting devices: %w", err)
	}
	return n, nil
}

// Open creates a context on GPU ordinal and binds it to the calling goroutine's OS thread. With no usable
// GPU or driver it returns an error saying so (gorgonia.org/cu's init would have exited; see cgo_cuda.c).
func Open(ordinal int) (*Device, error) {
	if err := initStatus(); err != nil {
		return nil, fmt.Errorf("gpu: no usable NVIDIA GPU (%v); t2m-cuda needs an NVIDIA GPU and driver, "+
			"use the CPU build (make build) elsewhere", err)
	}
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("gpu: counting devices: %w", err)
	}
	if ordinal < 0 || ordinal >= n {
		return nil, fmt.Errorf("gpu: GPU %d asked for (--gpus or LOCAL_RANK), but this machine has %d", ordinal, n)
	}
	dev, err := cu.GetDevice(ordinal)
	if err != nil {
		return nil, fmt.Errorf("gpu: device %d: %w", ordinal, err)
	}
	d := &Device{Ordinal: ordinal, dev: dev, modules: map[string]cu.Module{}, kernels: map[string]*Kernel{}}
	if d.Name, err = dev.Name(); err != nil {
		return nil, fmt.Errorf("gpu: device %d name: %w", ordinal, err)
	}
	total, err := dev.TotalMem()
	if err != nil {
		return nil, fmt.Errorf("gpu: device %d memory: %w", ordinal, err)
	}
	d.TotalMB = total >> 20
	if d.CC[0], d.CC[1], err = dev.ComputeCapability(); err != nil {
		return nil, fmt.Errorf("gpu: device %d compute capability: %w", ordinal, err)
	}
	if d.CC[0] < 8 {
		return nil, fmt.Errorf("gpu: %s has compute capability %d.%d; t2m's kernels need 8.0 or newer (bf16)",
			d.Name, d.CC[0], d.CC[1])
	}
	runtime.LockOSThread()
	if d.ctx, err = dev.MakeContext(cu.SchedAuto); err != nil {
		return nil, fmt.Errorf("gpu: creating a context on %s: %w", d.Name, err)
	}
	if d.Stream, err = cu.MakeStream(cu.NonBlocking); err != nil {
		return nil, fmt.Errorf("gpu: creating a stream: %w", err)
	}
	return d, nil
}

// Bind locks the calling goroutine to its OS thread and makes d's context current there. Call it at the
// start of every goroutine that uses d (tests run each in its own goroutine).
func (d *Device) Bind() error {
	runtime.LockOSThread()
	if err := cu.SetCurrentContext(d.ctx); err != nil {
		return fmt.Errorf("gpu: binding the context of %s: %w", d.Name, err)
	}
	return nil
}

// Context is d's CUDA context (for copies between it and another context of the same GPU, such as the
// primary context NCCL works in: cu.MemcpyPeerAsync).
func (d *Device) Context() cu.CUContext { return d.ctx }

// Close releases cuBLAS, the stream, the modules and the context (and with it all device memory).
func (d *Device) Close() error {
	if d.blas != nil {
		d.blas.close()
	}
	if d.stager != nil {
		_ = d.stager.Close()
	}
	for _, m := range d.modules {
		_ = m.Unload()
	}
	_ = d.Stream.Destroy()
	if err := d.ctx.Destroy(); err != nil {
		return fmt.Errorf("gpu: destroying the context: %w", err)
	}
	return nil
}

// Sync waits for all work on d's stream and returns the first asynchronous error, if any.
func (d *Device) Sync() error {
	if err := d.Stream.Synchronize(); err != nil {
		return fmt.Errorf("gpu: %s: a kernel or copy failed: %w", d.Name, err)
	}
	return nil
}

// Kernel returns the function name from the embedded PTX file (kernels/<file>.ptx), loading the module
// the first time.
func (d *Device) Kernel(file, name string) (*Kernel, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := file + "." + name
	if k, ok := d.kernels[key]; ok {
		return k, nil
	}
	mod, ok := d.modules[file]
	if !ok {
		ptx, err := kernels.PTX(file)
		if err != nil {
			return nil, fmt.Errorf("gpu: %w", err)
		}
		if mod, err = cu.LoadData(ptx); err != nil {
			return nil, fmt.Errorf("gpu: loading kernels/%s.ptx on %s (JIT from its PTX): %w", file, d.Name, err)
		}
		d.modules[file] = mod
	}
	fn, err := mod.Function(name)
	if err != nil {
		return nil, fmt.Errorf("gpu: kernel %s not in kernels/%s.ptx: %w", name, file, err)
	}
	k := &Kernel{Name: key, file: file, name: name, fn: fn}
	d.kernels[key] = k
	return k, nil
}

// PDLLaunches is how many kernels d has launched with programmatic dependent launch (tests).
func (d *Device) PDLLaunches() int { return d.pdlLaunches }

// sm90Function is k from its file's sm_90 build, loaded on first use (see Kernel.sm90).
func (d *Device) sm90Function(k *Kernel) (cu.Function, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if k.sm90Got {
		return k.sm90, k.sm90Err
	}
	k.sm90Got = true
	file := k.file + kernels.SM90
	mod, ok := d.modules[file]
	switch {
	case ok:
	case d.CC[0] < 9:
		k.sm90Err = fmt.Errorf("compute capability %d.%d has no programmatic dependent launch", d.CC[0], d.CC[1])
		return k.sm90, k.sm90Err
	default:
		ptx, err := kernels.PTX(file)
		if err != nil {
			k.sm90Err = err
			return k.sm90, err
		}
		if mod, err = cu.LoadData(ptx); err != nil {
			k.sm90Err = fmt.Errorf("gpu: loading kernels/%s.ptx on %s: %w", file, d.Name, err)
			return k.sm90, k.sm90Err
		}
		d.modules[file] = mod
	}
	k.sm90, k.sm90Err = mod.Function(k.name)
	if k.sm90Err == nil && k.maxSmem > 0 {
		k.sm90Err = setMaxDynamicSmem(k.sm90, k.maxSmem)
	}
	return k.sm90, k.sm90Err
}

// SetMaxDynamicSmem allows k to be launched with up to bytes of dynamic shared memory (above 48 KB).
func (k *Kernel) SetMaxDynamicSmem(bytes int) error {
	if err := setMaxDynamicSmem(k.fn, bytes); err != nil {
		return fmt.Errorf("gpu: %s: raising dynamic shared memory to %d bytes: %w", k.Name, bytes, err)
	}
	k.maxSmem = bytes
	if k.sm90Got && k.sm90Err == nil {
		if err := setMaxDynamicSmem(k.sm90, bytes); err != nil {
			return fmt.Errorf("gpu: %s (sm_90): raising dynamic shared memory to %d bytes: %w", k.Name, bytes, err)
		}
	}
	return nil
}

// NewStream creates another non-blocking stream on d (for work that overlaps d.Stream's, ordered with
// SyncEvents).
func (d *Device) NewStream() (cu.Stream, error) {
	s, err := cu.MakeStream(cu.NonBlocking)
	if err != nil {
		return s, fmt.Errorf("gpu: creating a stream: %w", err)
	}
	return s, nil
}

// SyncEvent orders work between streams: Record on one stream, Wait on another.
type SyncEvent struct{ ev cu.Event }

// NewSyncEvent creates an event without timing (cheaper to record and wait on).
func (d *Device) NewSyncEvent() (*SyncEvent, error) {
	ev, err := cu.MakeEvent(cu.DisableTiming)
	if err != nil {
		return nil, fmt.Errorf("gpu: creating an event: %w", err)
	}
	return &SyncEvent{ev}, nil
}

// Record marks the current end of s's work.
func (e *SyncEvent) Record(s cu.Stream) error {
	if err := e.ev.Record(s); err != nil {
		return fmt.Errorf("gpu: recording an event: %w", err)
	}
	return nil
}

// Wait makes later work on s wait until the work e last recorded has finished.
func (e *SyncEvent) Wait(s cu.Stream) error {
	if err := s.Wait(e.ev, 0); err != nil {
		return fmt.Errorf("gpu: waiting on an event: %w", err)
	}
	return nil
}

// Launch runs k on d's stream. Each argument takes one 8-byte slot: Ptr and Buffer (device pointers), int,
// int64, uint64 (64-bit scalars: declare them long long in the kernel), float32 (bits in the low word:
// declare float) and float64 (double). The launch's own error is returned; errors inside the kernel show
// at the next Sync.
func (d *Device) Launch(k *Kernel, grid, block Dim3, smem int, args ...any) error {
	return d.LaunchOn(d.Stream, k, grid, block, smem, args...)
}

// LaunchOn is Launch on stream s.
func (d *Device) LaunchOn(s cu.Stream, k *Kernel, grid, block Dim3, smem int, args ...any) error {
	var slots [32]uint64
	if len(args) > len(slots) {
		return fmt.Errorf("gpu: launching %s: %d arguments, at most %d", k.Name, len(args), len(slots))
	}
	for i, a := range args {
		v, err := argSlot(a)
		if err != nil {
			return fmt.Errorf("gpu: launching %s: argument %d: %w", k.Name, i, err)
		}
		slots[i] = v
	}
	if grid.X <= 0 || grid.Y <= 0 || grid.Z <= 0 || block.X <= 0 || block.Y <= 0 || block.Z <= 0 {
		return fmt.Errorf("gpu: launching %s: empty grid %v or block %v", k.Name, grid, block)
	}
	fn, pdl := k.fn, false
	if d.PDL {
		if f, err := d.sm90Function(k); err == nil {
			fn, pdl = f, true
		}
	}
	if pdl {
		d.pdlLaunches++
	}
	if err := launchRaw(fn, grid, block, smem, s, slots[:len(args)], pdl); err != nil {
		return fmt.Errorf("gpu: launching %s grid %v block %v smem %d: %w", k.Name, grid, block, smem, err)
	}
	return nil
}
