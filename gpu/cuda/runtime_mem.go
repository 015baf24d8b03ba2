//go:build t2mcuda

package cuda

import (
	"fmt"
	"math"
	"unsafe"

	"gorgonia.org/cu"
)

// Buffer is a span of device memory: from Device.Alloc, or carved out of an Arena.
type Buffer struct {
	Ptr   cu.DevicePtr
	Bytes int64
}

// Slice returns bytes [off, off+n) of b.
func (b Buffer) Slice(off, n int64) Buffer {
	if off < 0 || n < 0 || off+n > b.Bytes {
		panic(fmt.Sprintf("gpu: slice [%d, %d) of a %d-byte buffer", off, off+n, b.Bytes))
	}
	return Buffer{Ptr: b.Ptr + cu.DevicePtr(off), Bytes: n}
}

// argSlot converts one kernel argument to its 8-byte slot (see Device.Launch).
func argSlot(a any) (uint64, error) {
	switch v := a.(type) {
	case Buffer:
		return uint64(v.Ptr), nil
	case cu.DevicePtr:
		return uint64(v), nil
	case int:
		return uint64(int64(v)), nil
	case int64:
		return uint64(v), nil
	case uint64:
		return v, nil
	case float32:
		return uint64(math.Float32bits(v)), nil
	case float64:
		return math.Float64bits(v), nil
	}
	return 0, fmt.Errorf("type %T cannot be a kernel argument (use Buffer, int, int64, uint64, float32, float64)", a)
}

// Alloc allocates bytes of device memory with cuMemAlloc (never managed memory). The memory lives until
// Free or Close. Most code takes memory from an Arena instead.
func (d *Device) Alloc(bytes int64) (Buffer, error) {
	if bytes <= 0 {
		return Buffer{}, fmt.Errorf("gpu: allocating %d bytes", bytes)
	}
	p, err := cu.MemAlloc(bytes)
	if err != nil {
		free, total, _ := cu.MemInfo()
		return Buffer{}, fmt.Errorf("gpu: allocating %.2f GiB on %s (%.2f of %.2f GiB free): %w",
			GiB(bytes), d.Name, GiB(free), GiB(total), err)
	}
	d.mu.Lock()
	d.allocated += bytes
	d.peak = max(d.peak, d.allocated)
	d.mu.Unlock()
	return Buffer{Ptr: p, Bytes: bytes}, nil
}

// Free returns memory from Alloc.
func (d *Device) Free(b Buffer) error {
	if err := cu.MemFree(b.Ptr); err != nil {
		return fmt.Errorf("gpu: freeing %d bytes at %v: %w", b.Bytes, b.Ptr, err)
	}
	d.mu.Lock()
	d.allocated -= b.Bytes
	d.mu.Unlock()
	return nil
}

// PeakBytes is the most device memory that d's Alloc had handed out at once.
func (d *Device) PeakBytes() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.peak
}

// MemInfo returns the device's free and total memory as the driver sees them (cuBLAS and contexts included).
func (d *Device) MemInfo() (free, total int64, err error) {
	free, total, err = cu.MemInfo()
	if err != nil {
		err = fmt.Errorf("gpu: cuMemGetInfo: %w", err)
	}
	return
}

// GiB converts a byte count to gibibytes (for messages and benchmark metrics).
func GiB(b int64) float64 { return float64(b) / (1 << 30) }

// stagedMin is the smallest upload that goes through the device's pinned buffers (Stager, stageChunk bytes
// each, made on first use) rather than straight from pageable memory.
const (
	stagedMin  = 8 << 20
	stageChunk = 64 << 20
)

// stagerFor is the device's Stager, locked (the caller unlocks d.stageMu), for a copy of n bytes, or nil when
// the copy is too small to be worth it or no Stager could be made.
func (d *Device) stagerFor(n int64) *Stager {
	if n < stagedMin {
		return nil
	}
	d.stageMu.Lock()
	if d.stager == nil && d.stageErr == nil {
		d.stager, d.stageErr = d.NewStager(stageChunk)
	}
	if d.stager == nil {
		d.stageMu.Unlock()
		return nil
	}
	return d.stager
}

// Upload copies src to the start of dst in order on d's stream, and waits for it. src must be its own
// allocation or part of one without Go pointers (cgo's pointer check refuses a field of a struct with slices).
// From stagedMin bytes on it goes through the device's pinned buffers (Stager), unless they could not be
// allocated; so does Download.
func Upload[T any](d *Device, dst Buffer, src []T) error {
	n := int64(len(src)) * int64(unsafe.Sizeof(*new(T)))
	if n > dst.Bytes {
		return fmt.Errorf("gpu: upload of %d bytes into a %d-byte buffer", n, dst.Bytes)
	}
	if n == 0 {
		return nil
	}
	if st := d.stagerFor(n); st != nil {
		defer d.stageMu.Unlock()
		return st.Upload(dst, unsafe.Slice((*byte)(unsafe.Pointer(&src[0])), n))
	}
	if err := cu.MemcpyHtoDAsync(dst.Ptr, unsafe.Pointer(&src[0]), n, d.Stream); err != nil {
		return fmt.Errorf("gpu: upload of %d bytes: %w", n, err)
	}
	return d.Sync()
}

// Download copies the start of src into dst in order on d's stream, and waits for it.
func Download[T any](d *Device, dst []T, src Buffer) error {
	n := int64(len(dst)) * int64(unsafe.Sizeof(*new(T)))
	if n > src.Bytes {
		return fmt.Errorf("gpu: download of %d bytes from a %d-byte buffer", n, src.Bytes)
	}
	if n == 0 {
		return nil
	}
	if st := d.stagerFor(n); st != nil {
		defer d.stageMu.Unlock()
		return st.Download(unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), n), src)
	}
	if err := cu.MemcpyDtoHAsync(unsafe.Pointer(&dst[0]), src.Ptr, n, d.Stream); err != nil {
		return fmt.Errorf("gpu: download of %d bytes: %w", n, err)
	}
	return d.Sync()
}

// Copy copies src to the start of dst on d's stream (device to device, in order with the kernels).
func (d *Device) Copy(dst, src Buffer) error {
	if src.Bytes > dst.Bytes {
		return fmt.Errorf("gpu: copy of %d bytes into a %d-byte buffer", src.Bytes, dst.Bytes)
	}
	if src.Bytes == 0 {
		return nil
	}
	if err := cu.MemcpyDtoDAsync(dst.Ptr, src.Ptr, src.Bytes, d.Stream); err != nil {
		return fmt.Errorf("gpu: device copy of %d bytes: %w", src.Bytes, err)
	}
	return nil
}

// Memset sets every byte of b to v on d's stream.
func (d *Device) Memset(b Buffer, v byte) error {
	if err := cu.MemsetD8Async(b.Ptr, v, b.Bytes, d.Stream); err != nil {
		return fmt.Errorf("gpu: memset of %d bytes: %w", b.Bytes, err)
	}
	return nil
}

// HostBuffer is page-locked host memory: copies from and to it run at full PCIe speed and asynchronously.
type HostBuffer struct {
	Bytes []byte
	p     unsafe.Pointer
}

// AllocHost allocates bytes of page-locked host memory; release it with FreeHost.
func (d *Device) AllocHost(bytes int64) (*HostBuffer, error) {
	p, err := allocHost(bytes)
	if err != nil {
		return nil, fmt.Errorf("gpu: allocating %d bytes of pinned host memory: %w", bytes, err)
	}
	return &HostBuffer{Bytes: unsafe.Slice((*byte)(p), bytes), p: p}, nil
}

// FreeHost releases h.
func (d *Device) FreeHost(h *HostBuffer) error {
	if err := freeHost(h.p); err != nil {
		return fmt.Errorf("gpu: freeing pinned host memory: %w", err)
	}
	h.Bytes, h.p = nil, nil
	return nil
}

// Event marks a point on d's stream; two events time the work between them.
type Event struct{ ev cu.Event }

// Record creates an event and records it on d's stream now.
func (d *Device) Record() (*Event, error) {
	ev, err := cu.MakeEvent(cu.DefaultEvent)
	if err != nil {
		return nil, fmt.Errorf("gpu: creating an event: %w", err)
	}
	if err := ev.Record(d.Stream); err != nil {
		return nil, fmt.Errorf("gpu: recording an event: %w", err)
	}
	return &Event{ev}, nil
}

// Millis waits for end and returns the milliseconds between e and end, then destroys both events.
func (e *Event) Millis(end *Event) (float64, error) {
	defer cu.DestroyEvent(&e.ev)
	defer cu.DestroyEvent(&end.ev)
	return e.Span(end)
}

// Span waits for end and returns the milliseconds between e and end; both events stay.
func (e *Event) Span(end *Event) (float64, error) {
	if err := end.ev.Synchronize(); err != nil {
		return 0, fmt.Errorf("gpu: waiting for an event: %w", err)
	}
	ms, err := e.ev.Elapsed(end.ev)
	if err != nil {
		return 0, fmt.Errorf("gpu: event timing: %w", err)
	}
	return ms, nil
}

// destroy releases the event.
func (e *Event) destroy() { _ = cu.DestroyEvent(&e.ev) }

// uploadPiece is how many values UploadBF16 rounds and copies at a time (32 MiB of bf16).
const uploadPiece = 1 << 24

// UploadBF16 copies v, rounded to bf16, to the start of dst, a piece at a time through one reused host
// buffer: a 7B embedding (545M values) needs 32 MiB of host memory this way, not a 1 GiB bf16 copy.
func UploadBF16(d *Device, dst Buffer, v []float32) error {
	piece := make([]uint16, min(len(v), uploadPiece))
	for off := 0; off < len(v); off += uploadPiece {
		part := v[off:min(off+uploadPiece, len(v))]
		h := piece[:len(part)]
		RoundBF16(h, part)
		if err := Upload(d, dst.Slice(int64(off)*2, int64(len(part))*2), h); err != nil {
			return err
		}
	}
	return nil
}
