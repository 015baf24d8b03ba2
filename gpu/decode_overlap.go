//go:build t2mcuda

package gpu

import (
	"os"

	"gorgonia.org/cu"

	"github.com/t2m/t2m/gpu/cuda"
)

// overlapStreams is how many projections may run beside the one before them: k and v beside q, up beside
// gate (model.Forward calls them in that order, each group on one input).
const overlapStreams = 2

// decodeOverlap says whether projections that share their input run on side streams: yes unless
// T2M_GPU_OVERLAP=0.
func decodeOverlap() bool { return os.Getenv("T2M_GPU_OVERLAP") != "0" }

// overlap holds the side streams on which the decoder runs a projection beside the previous one on the same
// input (q, then k and v; gate, then up). At small batches each of those GEMVs leaves most of the GPU idle, and
// running them together fills it. fork marks, on the main stream, the point after which a group's input is
// ready; a side stream waits on it, runs its projection and records done[i]; the main stream waits on done[i]
// before the first op that reads that projection's output. In a captured graph these become the graph's
// branches and joins.
type overlap struct {
	side [overlapStreams]cu.Stream
	done [overlapStreams]*cuda.SyncEvent
	fork *cuda.SyncEvent
	runs int // projections launched on a side stream (tests)
}

// newOverlap creates the side streams and events.
func newOverlap(d *cuda.Device) (*overlap, error) {
	o := &overlap{}
	var err error
	for i := range o.side {
		if o.side[i], err = d.NewStream(); err != nil {
			return nil, err
		}
		if o.done[i], err = d.NewSyncEvent(); err != nil {
			return nil, err
		}
	}
	if o.fork, err = d.NewSyncEvent(); err != nil {
		return nil, err
	}
	return o, nil
}

// forkState is one forward's use of the side streams: the input of the last projection on the main stream,
// how many side streams took projections of it, and which outputs are still being written on which stream.
type forkState struct {
	input   cuda.Buffer
	used    int
	pending map[cuda.Buffer]int
	// dequant says the group's first projection (on the main stream) dequantizes into the whole NF4 scratch,
	// which the side streams' GEMVs use in parts (decoder.work): none runs beside it then.
	dequant bool
}

// join makes the main stream wait for every side stream still writing one of bufs.
func (f *forkState) join(d *cuda.Device, ov *overlap, bufs ...cuda.Buffer) error {
	for _, b := range bufs {
		i, ok := f.pending[b]
		if !ok {
			continue
		}
		if err := ov.done[i].Wait(d.Stream); err != nil {
			return err
		}
		delete(f.pending, b)
	}
	return nil
}

// joinAll makes the main stream wait for every side stream with work in flight (the end of a forward: a
// captured graph must end joined).
func (f *forkState) joinAll(d *cuda.Device, ov *overlap) error {
	for b := range f.pending {
		if err := f.join(d, ov, b); err != nil {
			return err
		}
	}
	return nil
}
