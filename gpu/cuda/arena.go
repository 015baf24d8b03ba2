//go:build t2mcuda

package cuda

import "fmt"

// Arena is one cuMemAlloc carved into buffers by a bump pointer. Weights take long-lived buffers at the
// start; a step's activations take the rest, either by Mark/Release around a region, or at offsets a memory
// plan computed (At). Peak records the high-water mark, the number the benchmark reports.
type Arena struct {
	base Buffer
	off  int64
	peak int64
}

// NewArena takes bytes of device memory from d for an arena.
func NewArena(d *Device, bytes int64) (*Arena, error) {
	b, err := d.Alloc(bytes)
	if err != nil {
		return nil, fmt.Errorf("gpu: arena: %w", err)
	}
	return &Arena{base: b}, nil
}

// Alloc returns the next bytes of the arena, 256-byte aligned, or an error naming what did not fit.
func (a *Arena) Alloc(bytes int64, what string) (Buffer, error) {
	if bytes <= 0 {
		return Buffer{}, fmt.Errorf("gpu: arena: %s: %d bytes", what, bytes)
	}
	start := AlignUp(a.off)
	if start+bytes > a.base.Bytes {
		return Buffer{}, fmt.Errorf("gpu: arena: %s needs %.3f GiB, %.3f of %.3f GiB left",
			what, GiB(bytes), GiB(a.base.Bytes-start), GiB(a.base.Bytes))
	}
	a.off = start + bytes
	a.peak = max(a.peak, a.off)
	return a.base.Slice(start, bytes), nil
}

// Mark returns the arena's current end; Release(mark) frees everything allocated after it.
func (a *Arena) Mark() int64 { return a.off }

// Release frees every buffer allocated after mark (their memory is reused by later Allocs).
func (a *Arena) Release(mark int64) {
	if mark < 0 || mark > a.off {
		panic(fmt.Sprintf("gpu: arena: release to %d, end is %d", mark, a.off))
	}
	a.off = mark
}

// At returns bytes at offset off from the current end without moving it: for buffers whose offsets a
// memory plan computed. Reserve(planBytes) first so that Peak counts them.
func (a *Arena) At(off, bytes int64) Buffer {
	return a.base.Slice(AlignUp(a.off)+off, bytes)
}

// Reserve records that a plan will use bytes past the current end (see At), failing if they do not fit.
func (a *Arena) Reserve(bytes int64) error {
	if end := AlignUp(a.off) + bytes; end > a.base.Bytes {
		return fmt.Errorf("gpu: arena: plan needs %.3f GiB past %.3f, arena is %.3f GiB",
			GiB(bytes), GiB(a.off), GiB(a.base.Bytes))
	} else {
		a.peak = max(a.peak, end)
	}
	return nil
}

// Base is the arena's whole allocation, to give back with Device.Free when the arena is no longer needed.
func (a *Arena) Base() Buffer { return a.base }

// Peak is the most of the arena ever in use, in bytes.
func (a *Arena) Peak() int64 { return a.peak }

// Size is the arena's capacity in bytes.
func (a *Arena) Size() int64 { return a.base.Bytes }
