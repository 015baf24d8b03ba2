//go:build t2mcuda

package nccl

// #cgo LDFLAGS: -lcuda -ldl
// #cgo CFLAGS: -I/usr/include -I/usr/local/cuda/include
// #include "cgo_nccl.h"
// #include <stdlib.h>
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unsafe"

	// gpu/cuda's cuInit guard keeps gorgonia.org/cu's package init from exiting on a machine without a
	// GPU, so that Load's error (and this package's tests) can be reached there.
	_ "github.com/t2m/t2m/gpu/cuda"
	"gorgonia.org/cu"
)

// DefaultTimeout is how long a wait on the other ranks (init, an all-reduce, destroy) may take before
// the communicator is aborted, unless T2M_NCCL_TIMEOUT (a Go duration such as "90s") says otherwise.
const DefaultTimeout = 10 * time.Minute

// EnvTimeout names the environment variable that overrides DefaultTimeout.
const EnvTimeout = "T2M_NCCL_TIMEOUT"

// Timeout returns $T2M_NCCL_TIMEOUT, or DefaultTimeout when it is unset.
func Timeout() (time.Duration, error) {
	s := strings.TrimSpace(os.Getenv(EnvTimeout))
	if s == "" {
		return DefaultTimeout, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("nccl: %s=%q is not a positive Go duration (like 90s or 10m)", EnvTimeout, s)
	}
	return d, nil
}

// UniqueID is NCCL's ncclUniqueId: rank 0 creates it, every rank passes the same bytes to InitRank.
type UniqueID [128]byte

// Lib is a loaded libnccl.
type Lib struct {
	Path string // what dlopen was given
	p    *C.t2m_nccl
}

// Load finds and loads NCCL (see Candidates for the order). Without it the error says what is missing
// and how to provide it.
func Load() (*Lib, error) {
	paths, explicit := Candidates(os.Getenv, filepath.Glob)
	var tried []string
	for _, path := range paths {
		cpath := C.CString(path)
		var p *C.t2m_nccl
		var missing *C.char
		r := C.t2m_nccl_open(cpath, &p, &missing)
		var why string
		if r == -1 {
			why = C.GoString(C.t2m_nccl_dlerror())
		}
		C.free(unsafe.Pointer(cpath))
		switch r {
		case 0:
			return &Lib{Path: path, p: p}, nil
		case -2:
			why = fmt.Sprintf("%s lacks %s (NCCL older than 2.x?)", path, C.GoString(missing))
		}
		if explicit {
			return nil, fmt.Errorf("nccl: %s=%s cannot be loaded: %s; set %s to the path of a libnccl.so.2, "+
				"or unset it to search the usual places", EnvLib, path, why, EnvLib)
		}
		tried = append(tried, why)
	}
	if len(paths) == 1 {
		tried = append(tried, "no pip nvidia-nccl wheel in the Python site-packages or LD_LIBRARY_PATH")
	}
	return nil, fmt.Errorf("nccl: %s not found (tried: %s); several GPUs need NCCL: install it (apt install "+
		"libnccl2, or pip install nvidia-nccl-cu12) or set %s=/path/to/libnccl.so.2", LibName,
		strings.Join(tried, "; "), EnvLib)
}

// Version is the library's version, as "2.27.7".
func (l *Lib) Version() string {
	var v C.int
	if C.t2m_nccl_get_version(l.p, &v) != 0 {
		return "unknown"
	}
	return versionString(int(v))
}

// versionString decodes NCCL_VERSION_CODE: major*1000+minor*100+patch up to 2.8, major*10000+minor*100+patch after.
func versionString(v int) string {
	if v < 20900 {
		return fmt.Sprintf("%d.%d.%d", v/1000, v%1000/100, v%100)
	}
	return fmt.Sprintf("%d.%d.%d", v/10000, v%10000/100, v%100)
}

// versionCode is the library's NCCL_VERSION_CODE (0 if unknown).
func (l *Lib) versionCode() int {
	var v C.int
	if C.t2m_nccl_get_version(l.p, &v) != 0 {
		return 0
	}
	return int(v)
}

// UniqueID creates the id rank 0 hands to every rank (it also starts NCCL's bootstrap listener on rank
// 0's machine, so call it on rank 0 only, once per communicator).
func (l *Lib) UniqueID() (UniqueID, error) {
	var id UniqueID
	if r := C.t2m_nccl_get_unique_id(l.p, (*C.t2m_nccl_id)(unsafe.Pointer(&id[0]))); r != 0 {
		return id, l.err("ncclGetUniqueId", int(r), nil)
	}
	return id, nil
}

// Comm is one rank's NCCL communicator. Use it from one goroutine at a time, on an OS thread whose current
// CUDA context is the one it was created with.
type Comm struct {
	lib         *Lib
	comm        unsafe.Pointer
	Rank, World int
	// Timeout bounds each wait on the other ranks; after it the communicator is aborted.
	Timeout time.Duration

	mu      sync.Mutex
	aborted error // why the communicator was aborted, if it was
}

// InitRank joins the communicator of world ranks identified by id as rank. The caller's OS thread must be
// locked and have the CUDA context of this rank's device current: NCCL allocates there (through the
// runtime API, which sees the device's primary context; see gpu.NewCollective). It returns once all
// ranks joined, or after timeout with an error (the communicator then aborted). With NCCL older than
// 2.17 the init cannot be interrupted and waits for all ranks however long that takes.
func (l *Lib) InitRank(world, rank int, id UniqueID, timeout time.Duration) (*Comm, error) {
	if world < 1 || rank < 0 || rank >= world {
		return nil, fmt.Errorf("nccl: rank %d of a world of %d", rank, world)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("nccl: init timeout %v: must be positive", timeout)
	}
	c := &Comm{lib: l, Rank: rank, World: world, Timeout: timeout}
	cid := (*C.t2m_nccl_id)(unsafe.Pointer(&id[0]))
	var comm unsafe.Pointer
	if C.t2m_nccl_has_config(l.p) == 0 || l.versionCode() < 21700 {
		if r := C.t2m_nccl_comm_init_rank(l.p, &comm, C.int(world), cid, C.int(rank)); r != 0 {
			return nil, l.err(fmt.Sprintf("ncclCommInitRank (rank %d of %d)", rank, world), int(r), nil)
		}
		c.comm = comm
		return c, nil
	}
	r := C.t2m_nccl_comm_init_rank_nonblocking(l.p, &comm, C.int(world), cid, C.int(rank))
	if r != C.T2M_NCCL_SUCCESS && r != C.T2M_NCCL_IN_PROGRESS {
		err := l.err(fmt.Sprintf("ncclCommInitRankConfig (rank %d of %d)", rank, world), int(r), comm)
		if comm != nil {
			C.t2m_nccl_comm_abort(l.p, comm)
		}
		return nil, err
	}
	c.comm = comm
	if err := c.poll(fmt.Sprintf("init of rank %d of %d", rank, world), nil); err != nil {
		return nil, err
	}
	return c, nil
}

// AllReduceSumF32 replaces the n float32 at buf (device memory of this rank's device) with their sum over
// all ranks: it enqueues ncclAllReduce (in place, ncclFloat32, ncclSum) on stream and waits until the
// stream has finished it (polling, so that a rank that stopped makes it fail after c.Timeout, with the
// communicator aborted, instead of hanging).
func (c *Comm) AllReduceSumF32(buf cu.DevicePtr, n int, stream cu.Stream) error {
	if err := c.usable(); err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("nccl: all-reduce of %d values", n)
	}
	what := fmt.Sprintf("all-reduce of %d floats on rank %d of %d", n, c.Rank, c.World)
	s := rawStream(stream)
	c.mu.Lock()
	comm := c.comm
	var r C.int
	if comm != nil {
		r = C.t2m_nccl_all_reduce_sum_f32(c.lib.p, C.ulonglong(buf), C.size_t(n), comm, s)
	}
	c.mu.Unlock()
	if comm == nil {
		return c.usable()
	}
	if r != C.T2M_NCCL_SUCCESS && r != C.T2M_NCCL_IN_PROGRESS {
		err := c.lib.err("ncclAllReduce: "+what, int(r), comm)
		c.abort(err)
		return err
	}
	return c.poll(what, s)
}

// poll waits until the communicator has no operation in progress and, when stream is not nil, until the
// stream's work is done, or until c.Timeout, when it aborts the communicator.
func (c *Comm) poll(what string, stream unsafe.Pointer) error {
	start := time.Now()
	deadline := start.Add(c.Timeout)
	sleep := 5 * time.Microsecond
	for {
		c.mu.Lock() // Abort may come from another goroutine: never query a communicator it freed
		comm := c.comm
		var state C.int
		var r C.int
		if comm != nil {
			r = C.t2m_nccl_comm_get_async_error(c.lib.p, comm, &state)
		}
		c.mu.Unlock()
		if comm == nil {
			return c.usable()
		}
		if r != C.T2M_NCCL_SUCCESS {
			err := c.lib.err("ncclCommGetAsyncError during "+what, int(r), comm)
			c.abort(err)
			return err
		}
		switch {
		case state != C.T2M_NCCL_SUCCESS && state != C.T2M_NCCL_IN_PROGRESS:
			err := c.lib.err(what+" failed", int(state), comm)
			c.abort(err)
			return err
		case state == C.T2M_NCCL_SUCCESS && stream == nil:
			return nil
		case state == C.T2M_NCCL_SUCCESS:
			switch q := C.t2m_cu_stream_query(stream); q {
			case 0: // CUDA_SUCCESS
				return nil
			case 600: // CUDA_ERROR_NOT_READY
			default:
				err := fmt.Errorf("nccl: %s: the CUDA stream failed: %s", what, C.GoString(C.t2m_cu_error_name(q)))
				c.abort(err)
				return err
			}
		}
		if time.Now().After(deadline) {
			err := fmt.Errorf("nccl: %s did not finish within %v: a rank stopped or hangs (the communicator is "+
				"aborted; %s sets the limit)", what, c.Timeout, EnvTimeout)
			c.abort(err)
			return err
		}
		time.Sleep(sleep)
		sleep = min(2*sleep, 100*time.Microsecond) // a finished all-reduce is seen within 0.1 ms
	}
}

// AsyncError returns the communicator's asynchronous error (a failed peer, a network error), nil while
// all is well or an operation is still in progress.
func (c *Comm) AsyncError() error {
	if err := c.usable(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.comm == nil {
		return nil // aborted or destroyed since usable
	}
	var state C.int
	if r := C.t2m_nccl_comm_get_async_error(c.lib.p, c.comm, &state); r != C.T2M_NCCL_SUCCESS {
		return c.lib.err("ncclCommGetAsyncError", int(r), c.comm)
	}
	if state != C.T2M_NCCL_SUCCESS && state != C.T2M_NCCL_IN_PROGRESS {
		return c.lib.err("asynchronous error", int(state), c.comm)
	}
	return nil
}

// Abort ends the communicator at once, stopping its operations in flight; it is safe on a communicator
// already aborted or destroyed.
func (c *Comm) Abort() { c.abort(errors.New("nccl: the communicator was aborted")) }

// abort aborts the communicator (once) and records why: later calls fail with that reason.
func (c *Comm) abort(why error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.comm == nil {
		return
	}
	C.t2m_nccl_comm_abort(c.lib.p, c.comm)
	c.comm = nil
	c.aborted = why
}

// usable returns an error when the communicator was aborted or destroyed.
func (c *Comm) usable() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.comm != nil {
		return nil
	}
	if c.aborted != nil {
		return fmt.Errorf("nccl: rank %d: the communicator was aborted after an earlier error (%w)", c.Rank, c.aborted)
	}
	return fmt.Errorf("nccl: rank %d: the communicator was destroyed", c.Rank)
}

// Destroy leaves the communicator cleanly: ncclCommFinalize (waiting at most c.Timeout for the other
// ranks to finish their operations), then ncclCommDestroy. When the wait times out the communicator is
// aborted instead. Destroy after Abort or Destroy does nothing.
func (c *Comm) Destroy() error {
	c.mu.Lock()
	comm := c.comm
	c.mu.Unlock()
	if comm == nil {
		return nil
	}
	r := C.t2m_nccl_comm_finalize(c.lib.p, comm)
	switch {
	case r == C.T2M_NCCL_SUCCESS || r == C.T2M_NCCL_IN_PROGRESS:
		if err := c.poll(fmt.Sprintf("finalize of rank %d of %d", c.Rank, c.World), nil); err != nil {
			return err // aborted
		}
	case r != -1: // -1: no ncclCommFinalize (NCCL < 2.14): destroy directly
		err := c.lib.err("ncclCommFinalize", int(r), comm)
		c.abort(err)
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.comm = nil
	if r := C.t2m_nccl_comm_destroy(c.lib.p, comm); r != C.T2M_NCCL_SUCCESS && r != C.T2M_NCCL_IN_PROGRESS {
		return c.lib.err("ncclCommDestroy", int(r), nil)
	}
	return nil
}

// err describes NCCL result r of call, with ncclGetLastError's message for comm when there is one.
func (l *Lib) err(call string, r int, comm unsafe.Pointer) error {
	msg := C.GoString(C.t2m_nccl_error_string(l.p, C.int(r)))
	if last := C.GoString(C.t2m_nccl_last_error(l.p, comm)); last != "" && last != msg {
		msg += ": " + last
	}
	return fmt.Errorf("nccl: %s: %s (ncclResult %d; NCCL_DEBUG=WARN or INFO shows more)", call, msg, r)
}

// rawStream is the CUstream inside a cu.Stream (a struct of one C pointer).
func rawStream(s cu.Stream) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&s)) }
