//go:build t2mcuda

package cuda

import "fmt"

// Arena is one contiguous range of device addresses carved into buffers by a bump pointer. Weights take
// long-lived buffers at the start; a step's activations take the rest, either by Mark/Release around a
// region, or at offsets a memory plan computed (At). Peak records the high-water mark.
//
// Where the GPU supports virtual memory management (every one since Pascal), the range is only reserved
// address space: physical memory is mapped in as the high-water mark grows, in steps of arenaGrowth, so the
// process holds what its buffers and plans need — what nvidia-smi shows — not the range's size. Otherwise
// the range is one cuMemAlloc of its whole size.
type Arena struct {
	d      *Device
	base   Buffer
	off    int64
	peak   int64
	vmm    bool       // base is reserved address space, backed up to mapped
	gran   int64      // physical chunk granularity (vmm)
	mapped int64      // bytes of base backed by memory (vmm)
	chunks []vmmChunk // the backing (vmm)
}

// arenaGrowth is the least physical memory an arena maps at a time: few mappings, at most this much unused.
const arenaGrowth = 256 << 20

// NewArena takes an arena of up to bytes of device memory from d. With virtual memory management bytes may
// exceed the free memory (even the card's): only what the buffers reach is ever backed, and a buffer that
// does not fit fails with how much it needed and how much is free.
func NewArena(d *Device, bytes int64) (*Arena, error) {
	if bytes <= 0 {
		return nil, fmt.Errorf("gpu: arena of %d bytes", bytes)
	}
	if d.vmmSupported() {
		if g, err := d.vmmGranularity(); err == nil && g > 0 {
			if b, err := d.vmmReserve(roundUp(bytes, g), g); err == nil {
				return &Arena{d: d, base: b, vmm: true, gran: g}, nil
			}
		}
	}
	// Without virtual memory the range is allocated at once: no more than the free memory less a reserve for
	// the driver and cuBLAS.
	if free, _, err := d.MemInfo(); err == nil && bytes > free-fixedReserve && free > 2*fixedReserve {
		bytes = free - fixedReserve
	}
	b, err := d.Alloc(bytes)
	if err != nil {
		return nil, fmt.Errorf("gpu: arena: %w", err)
	}
	return &Arena{d: d, base: b}, nil
}

// fixedReserve is the device memory an arena allocated at once leaves free (driver, cuBLAS workspace).
const fixedReserve = 1 << 30

// roundUp rounds n up to a multiple of m.
func roundUp(n, m int64) int64 { return (n + m - 1) / m * m }

// commit backs the arena with memory up to end (a no-op without virtual memory management).
func (a *Arena) commit(end int64, what string) error {
	if !a.vmm || end <= a.mapped {
		return nil
	}
	need := roundUp(end-a.mapped, a.gran)
	step := min(max(need, roundUp(arenaGrowth, a.gran)), a.base.Bytes-a.mapped)
	c, err := a.d.vmmMap(a.base, a.mapped, step)
	if err != nil && step > need {
		c, err = a.d.vmmMap(a.base, a.mapped, need)
	}
	if err != nil {
		free, _, _ := a.d.MemInfo()
		return fmt.Errorf("gpu: arena: %s needs %.2f GiB more device memory (this arena holds %.2f GiB; %.2f GiB free on %s): %w",
			what, GiB(end-a.mapped), GiB(a.mapped), GiB(free), a.d.Name, err)
	}
	a.chunks = append(a.chunks, c)
	a.mapped += c.bytes
	return nil
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
	if err := a.commit(start+bytes, what); err != nil {
		return Buffer{}, err
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
	} else if err := a.commit(end, "the memory plan"); err != nil {
		return err
	} else {
		a.peak = max(a.peak, end)
	}
	return nil
}

// Base is the arena's whole address range.
func (a *Arena) Base() Buffer { return a.base }

// Free gives the arena's memory back; its buffers must not be used afterwards.
func (a *Arena) Free() error {
	if a.vmm {
		err := a.d.vmmRelease(a.base, a.chunks)
		a.chunks, a.mapped = nil, 0
		return err
	}
	return a.d.Free(a.base)
}

// Committed is the device memory the arena holds: the mapped part of its range, or all of it without
// virtual memory management.
func (a *Arena) Committed() int64 {
	if a.vmm {
		return a.mapped
	}
	return a.base.Bytes
}

// Peak is the most of the arena ever in use, in bytes.
func (a *Arena) Peak() int64 { return a.peak }

// Size is the arena's capacity in bytes.
func (a *Arena) Size() int64 { return a.base.Bytes }
