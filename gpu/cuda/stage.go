package cuda

import "sync"

// stageSink is where stage hands each filled host buffer: a DMA engine in the CUDA build (Stager), a fake in
// tests.
type stageSink interface {
	// send starts copying the first n bytes of buffer slot to the destination at byte off; it may return
	// before the copy has read the buffer.
	send(slot int, off int64, n int) error
	// wait returns once slot's last send has finished reading the buffer.
	wait(slot int) error
}

// stage copies src to the sink's destination through the host buffers slots, all of one size: each piece of
// src is copied into a free buffer by up to workers goroutines, then sent; a buffer is filled again only after
// the sink says its previous send has read it, so with two buffers one fills while the other's copy runs.
// The caller waits for the last sends (the sink's stream) before it reuses src or reads the destination.
func stage(src []byte, slots [][]byte, workers int, sink stageSink) error {
	chunk := len(slots[0])
	for k, off := 0, 0; off < len(src); k, off = k+1, off+chunk {
		s := k % len(slots)
		if k >= len(slots) {
			if err := sink.wait(s); err != nil {
				return err
			}
		}
		n := min(chunk, len(src)-off)
		parallelCopy(slots[s][:n], src[off:off+n], workers)
		if err := sink.send(s, int64(off), n); err != nil {
			return err
		}
	}
	return nil
}

// parallelCopy is copy(dst, src) by up to workers goroutines, each on a page-aligned piece: reading a mapped
// file takes a page fault per 4 KiB page not yet mapped, and the kernel serves faults of several threads at
// once. Small copies stay on the calling goroutine.
func parallelCopy(dst, src []byte, workers int) {
	const page, minPiece = 4096, 1 << 20
	if workers <= 1 || len(src) < 2*minPiece {
		copy(dst, src)
		return
	}
	part := max((len(src)+workers-1)/workers, minPiece)
	part = (part + page - 1) / page * page
	var wg sync.WaitGroup
	for lo := 0; lo < len(src); lo += part {
		hi := min(lo+part, len(src))
		wg.Add(1)
		go func() {
			defer wg.Done()
			copy(dst[lo:hi], src[lo:hi])
		}()
	}
	wg.Wait()
}

// unstageSource is where unstage takes device bytes from: a DMA engine in the CUDA build, a fake in tests.
type unstageSource interface {
	// recv starts copying n bytes from the source at byte off into buffer slot; it may return before the copy
	// has written the buffer.
	recv(slot int, off int64, n int) error
	// wait returns once slot's last recv has written the buffer.
	wait(slot int) error
}

// unstage is stage's mirror for downloads: each piece of the source is received into a host buffer while
// the previous piece is copied out of the other buffer into dst (by up to workers goroutines). slots must
// hold at least two buffers of one size.
func unstage(dst []byte, slots [][]byte, workers int, src unstageSource) error {
	chunk := len(slots[0])
	piece := func(k int) (int, int) { off := k * chunk; return off, min(chunk, len(dst)-off) }
	pieces := (len(dst) + chunk - 1) / chunk
	if pieces > 0 {
		if err := src.recv(0, 0, min(chunk, len(dst))); err != nil {
			return err
		}
	}
	for k := range pieces {
		if k+1 < pieces { // the next piece lands in the other buffer while this one is copied out
			off, n := piece(k + 1)
			if err := src.recv((k+1)%len(slots), int64(off), n); err != nil {
				return err
			}
		}
		s := k % len(slots)
		if err := src.wait(s); err != nil {
			return err
		}
		off, n := piece(k)
		parallelCopy(dst[off:off+n], slots[s][:n], workers)
	}
	return nil
}
