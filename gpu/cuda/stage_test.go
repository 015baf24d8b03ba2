package cuda

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// asyncSink is a DMA engine that reads a buffer late: a send is only queued, and its bytes are taken from the
// buffer when wait(slot) or flush runs, so a buffer refilled before its send was waited for delivers the new
// bytes to the old place.
type asyncSink struct {
	slots   [][]byte
	dst     []byte
	pending map[int][2]int64 // slot → (off, n) of its queued send
	sends   int
	failAt  int // the send that fails (0: none)
}

func (s *asyncSink) send(slot int, off int64, n int) error {
	s.sends++
	if s.sends == s.failAt {
		return errors.New("send refused")
	}
	if _, busy := s.pending[slot]; busy {
		return fmt.Errorf("slot %d sent again before its copy was waited for", slot)
	}
	s.pending[slot] = [2]int64{off, int64(n)}
	return nil
}

func (s *asyncSink) wait(slot int) error {
	if p, ok := s.pending[slot]; ok {
		copy(s.dst[p[0]:p[0]+p[1]], s.slots[slot][:p[1]])
		delete(s.pending, slot)
	}
	return nil
}

func (s *asyncSink) flush() {
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
		sink := &asyncSink{slots: slots, dst: make([]byte, c.n), pending: map[int][2]int64{}}
		if err := stage(src, slots, c.workers, sink); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		sink.flush()
		if !bytes.Equal(sink.dst, src) {
			t.Errorf("%+v: the destination differs from the source", c)
		}
		if want := (c.n + chunk - 1) / chunk; sink.sends != want {
			t.Errorf("%+v: %d sends, want %d", c, sink.sends, want)
		}
	}
	slots := [][]byte{make([]byte, 16), make([]byte, 16)}
	sink := &asyncSink{slots: slots, dst: make([]byte, 100), pending: map[int][2]int64{}, failAt: 3}
	if err := stage(make([]byte, 100), slots, 1, sink); err == nil || sink.sends != 3 {
		t.Errorf("a failed third send: err %v after %d sends", err, sink.sends)
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

// asyncSource is a DMA engine that writes a buffer late: a recv is only queued, and the buffer is written when
// wait(slot) runs, so bytes copied out of a buffer before its recv was waited for are stale.
type asyncSource struct {
	slots   [][]byte
	src     []byte
	pending map[int][2]int64
	recvs   int
}

func (s *asyncSource) recv(slot int, off int64, n int) error {
	s.recvs++
	if _, busy := s.pending[slot]; busy {
		return fmt.Errorf("slot %d received into again before its copy was waited for", slot)
	}
	s.pending[slot] = [2]int64{off, int64(n)}
	return nil
}

func (s *asyncSource) wait(slot int) error {
	if p, ok := s.pending[slot]; ok {
		copy(s.slots[slot][:p[1]], s.src[p[0]:p[0]+p[1]])
		delete(s.pending, slot)
	}
	return nil
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
		source := &asyncSource{slots: slots, src: src, pending: map[int][2]int64{}}
		dst := make([]byte, c.n)
		if err := unstage(dst, slots, c.workers, source); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if !bytes.Equal(dst, src) {
			t.Errorf("%+v: dst differs from the source", c)
		}
		if want := (c.n + chunk - 1) / chunk; source.recvs != want || len(source.pending) != 0 {
			t.Errorf("%+v: %d recvs (want %d), %d left pending", c, source.recvs, want, len(source.pending))
		}
	}
}
