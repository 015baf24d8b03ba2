package cuda

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// lateDMA is a DMA engine that copies late, in either direction: a send (buffer slot → dev) or a recv (dev →
// buffer slot) is only queued, and its bytes move when wait(slot) or flush runs. So a buffer refilled before its
// send was waited for delivers the new bytes to the old place, and bytes copied out of a buffer before its recv
// was waited for are stale.
type lateDMA struct {
	slots   [][]byte
	dev     []byte
	pending map[int]lateCopy
	calls   int
	failAt  int // the call that fails (0: none)
}

// lateCopy is a queued copy of n bytes at dev offset off; recv: into the buffer.
type lateCopy struct {
	off  int64
	n    int
	recv bool
}

func newLateDMA(slots [][]byte, dev []byte) *lateDMA {
	return &lateDMA{slots: slots, dev: dev, pending: map[int]lateCopy{}}
}

func (s *lateDMA) queue(slot int, c lateCopy) error {
	s.calls++
	if s.calls == s.failAt {
		return errors.New("copy refused")
	}
	if _, busy := s.pending[slot]; busy {
		return fmt.Errorf("slot %d reused before its copy was waited for", slot)
	}
	s.pending[slot] = c
	return nil
}

func (s *lateDMA) send(slot int, off int64, n int) error {
	return s.queue(slot, lateCopy{off, n, false})
}
func (s *lateDMA) recv(slot int, off int64, n int) error {
	return s.queue(slot, lateCopy{off, n, true})
}

func (s *lateDMA) wait(slot int) error {
	if c, ok := s.pending[slot]; ok {
		if c.recv {
			copy(s.slots[slot][:c.n], s.dev[c.off:c.off+int64(c.n)])
		} else {
			copy(s.dev[c.off:c.off+int64(c.n)], s.slots[slot][:c.n])
		}
		delete(s.pending, slot)
	}
	return nil
}

func (s *lateDMA) flush() {
	for slot := range s.slots {
		_ = s.wait(slot)
	}
}

// stage delivers every byte of src to its place through two (or three) reused buffers whose sends complete
// late, for sizes around the buffer size and workers from one to several; a failed send is returned.
func TestStageThroughReusedBuffers(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const chunk = 3 << 20 // large enough for parallelCopy to split
	for _, c := range []struct{ n, slots, workers int }{
		{0, 2, 1}, {1, 2, 4}, {chunk - 1, 2, 4}, {chunk, 2, 4}, {chunk + 1, 2, 1},
		{7*chunk/2 + 13, 2, 4}, {5 * chunk, 3, 3}, {9*chunk + 4095, 2, 8},
	} {
		src := make([]byte, c.n)
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		slots := make([][]byte, c.slots)
		for i := range slots {
			slots[i] = make([]byte, chunk)
		}
		sink := newLateDMA(slots, make([]byte, c.n))
		if err := stage(src, slots, c.workers, sink); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		sink.flush()
		if !bytes.Equal(sink.dev, src) {
			t.Errorf("%+v: the destination differs from the source", c)
		}
		if want := (c.n + chunk - 1) / chunk; sink.calls != want {
			t.Errorf("%+v: %d sends, want %d", c, sink.calls, want)
		}
	}
	slots := [][]byte{make([]byte, 16), make([]byte, 16)}
	sink := newLateDMA(slots, make([]byte, 100))
	sink.failAt = 3
	if err := stage(make([]byte, 100), slots, 1, sink); err == nil || sink.calls != 3 {
		t.Errorf("a failed third send: err %v after %d sends", err, sink.calls)
	}
}

// parallelCopy copies exactly, whatever the split, and leaves the bytes after dst's length alone.
func TestParallelCopy(t *testing.T) {
	for _, n := range []int{0, 5, 2<<20 - 1, 2 << 20, 5<<20 + 3} {
		for _, w := range []int{1, 2, 3, 16} {
			src := make([]byte, n)
			for i := range src {
				src[i] = byte(i*31 + 7)
			}
			dst := make([]byte, n+8)
			parallelCopy(dst[:n], src, w)
			if !bytes.Equal(dst[:n], src) || !bytes.Equal(dst[n:], make([]byte, 8)) {
				t.Errorf("n %d, %d workers: wrong copy", n, w)
			}
		}
	}
}

// unstage delivers every byte of the source into dst through two (or three) reused buffers written late, for
// sizes around the buffer size.
func TestUnstageThroughReusedBuffers(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const chunk = 3 << 20
	for _, c := range []struct{ n, slots, workers int }{
		{0, 2, 1}, {1, 2, 4}, {chunk, 2, 4}, {chunk + 1, 2, 1}, {7*chunk/2 + 13, 2, 4}, {5 * chunk, 3, 3},
	} {
		src := make([]byte, c.n)
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		slots := make([][]byte, c.slots)
		for i := range slots {
			slots[i] = make([]byte, chunk)
		}
		source := newLateDMA(slots, src)
		dst := make([]byte, c.n)
		if err := unstage(dst, slots, c.workers, source); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if !bytes.Equal(dst, src) {
			t.Errorf("%+v: dst differs from the source", c)
		}
		if want := (c.n + chunk - 1) / chunk; source.calls != want || len(source.pending) != 0 {
			t.Errorf("%+v: %d recvs (want %d), %d left pending", c, source.calls, want, len(source.pending))
		}
	}
}
