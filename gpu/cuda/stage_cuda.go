//go:build t2mcuda

package cuda

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"gorgonia.org/cu"
)

// Stager uploads pageable host bytes (a mapped checkpoint, Go memory) through two pinned host buffers: while
// the DMA engine copies one to the device at full PCIe speed, goroutines fill the other (stage); downloads
// run the other way (unstage). A copy from or to pageable memory goes through the driver's own staging, one
// thread, at a few GB/s.
type Stager struct {
	d       *Device
	bufs    []*HostBuffer
	events  []cu.Event
	workers int
	dst     Buffer // the destination of the Upload in progress
	src     Buffer // the source of the Download in progress
}

// NewStager allocates two pinned buffers of chunk bytes each for uploads on d's stream.
func (d *Device) NewStager(chunk int64) (*Stager, error) {
	s := &Stager{d: d, workers: min(runtime.GOMAXPROCS(0), 8)}
	for range 2 {
		h, err := d.AllocHost(chunk)
		if err != nil {
			return nil, errors.Join(err, s.Close())
		}
		s.bufs = append(s.bufs, h)
		ev, err := cu.MakeEvent(cu.DisableTiming)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("gpu: stager: creating an event: %w", err), s.Close())
		}
		s.events = append(s.events, ev)
	}
	return s, nil
}

// Upload copies src to the start of dst and waits for the copy.
func (s *Stager) Upload(dst Buffer, src []byte) error {
	if int64(len(src)) > dst.Bytes {
		return fmt.Errorf("gpu: staged upload of %d bytes into a %d-byte buffer", len(src), dst.Bytes)
	}
	s.dst = dst
	return s.copyVia("upload", len(src), func(slots [][]byte) error { return stage(src, slots, s.workers, s) })
}

// Download copies the start of src into dst and waits for the copy.
func (s *Stager) Download(dst []byte, src Buffer) error {
	if int64(len(dst)) > src.Bytes {
		return fmt.Errorf("gpu: staged download of %d bytes from a %d-byte buffer", len(dst), src.Bytes)
	}
	s.src = src
	return s.copyVia("download", len(dst), func(slots [][]byte) error { return unstage(dst, slots, s.workers, s) })
}

// copyVia runs a staged copy of n bytes (stage or unstage over the pinned buffers' bytes) and waits for the
// device, whether or not the copy failed part way.
func (s *Stager) copyVia(what string, n int, run func(slots [][]byte) error) error {
	slots := make([][]byte, len(s.bufs))
	for i, h := range s.bufs {
		slots[i] = h.Bytes
	}
	err := run(slots)
	if serr := s.d.Sync(); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("gpu: staged %s of %d bytes: %w", what, n, err)
	}
	return nil
}

func (s *Stager) recv(slot int, off int64, n int) error {
	if err := cu.MemcpyDtoHAsync(unsafe.Pointer(&s.bufs[slot].Bytes[0]), s.src.Ptr+cu.DevicePtr(off), int64(n), s.d.Stream); err != nil {
		return err
	}
	return s.events[slot].Record(s.d.Stream)
}

func (s *Stager) send(slot int, off int64, n int) error {
	if err := cu.MemcpyHtoDAsync(s.dst.Ptr+cu.DevicePtr(off), unsafe.Pointer(&s.bufs[slot].Bytes[0]), int64(n), s.d.Stream); err != nil {
		return err
	}
	return s.events[slot].Record(s.d.Stream)
}

func (s *Stager) wait(slot int) error { return s.events[slot].Synchronize() }

// Close frees the pinned buffers and events.
func (s *Stager) Close() error {
	var errs []error
	for _, h := range s.bufs {
		errs = append(errs, s.d.FreeHost(h))
	}
	for i := range s.events {
		errs = append(errs, cu.DestroyEvent(&s.events[i]))
	}
	s.bufs, s.events = nil, nil
	return errors.Join(errs...)
}
