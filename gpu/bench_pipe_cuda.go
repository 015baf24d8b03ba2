//go:build t2mcuda

package gpu

import (
	"fmt"

	"gorgonia.org/cu"
)

// weightPipe dequantizes the NF4 weights of a known sequence of linears one ahead, on a second stream,
// into two alternating scratch buffers, so that the memory-bound dequant of weight i+1 can run while the
// GEMMs of weight i use the tensor cores. Events order the two streams: the GEMM of i waits for ready[i%2];
// the dequant of i+2 (same buffer) waits for free[i%2], recorded after the GEMMs of i.
type weightPipe struct {
	d           *Device
	stream      cu.Stream
	bufs        [2]Buffer
	ready, free [2]*SyncEvent
	order       []*benchLinear
	pos         int
}

func newWeightPipe(d *Device, ar *Arena, maxElems int) (*weightPipe, error) {
	p := &weightPipe{d: d}
	var err error
	if p.stream, err = d.NewStream(); err != nil {
		return nil, err
	}
	for i := range 2 {
		if p.bufs[i], err = ar.Alloc(int64(maxElems)*2, "dequant scratch"); err != nil {
			return nil, err
		}
		if p.ready[i], err = d.NewSyncEvent(); err != nil {
			return nil, err
		}
		if p.free[i], err = d.NewSyncEvent(); err != nil {
			return nil, err
		}
		if err := p.free[i].Record(d.Stream); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// begin starts a pass over order, dequantizing its first weight.
func (p *weightPipe) begin(order []*benchLinear) error {
	p.order, p.pos = order, 0
	return p.issue(0)
}

// issue dequantizes order[i] into bufs[i%2] on the pipe's stream once that buffer is free.
func (p *weightPipe) issue(i int) error {
	if i >= len(p.order) {
		return nil
	}
	b := i % 2
	if err := p.free[b].Wait(p.stream); err != nil {
		return err
	}
	if err := p.d.DequantNF4On(p.stream, p.order[i].w, p.bufs[b]); err != nil {
		return err
	}
	return p.ready[b].Record(p.stream)
}

// weight returns l's dequantized weight [out, in] for use on the device's stream, and issues the next
// weight's dequant. l must be the next linear of the order.
func (p *weightPipe) weight(l *benchLinear) (Mat, error) {
	if p.pos >= len(p.order) || p.order[p.pos] != l {
		return Mat{}, fmt.Errorf("gpu: weight pipe: %s is not linear %d of the order", l.spec.name, p.pos)
	}
	b := p.pos % 2
	if err := p.ready[b].Wait(p.d.Stream); err != nil {
		return Mat{}, err
	}
	if err := p.issue(p.pos + 1); err != nil {
		return Mat{}, err
	}
	return M(p.bufs[b], l.spec.out, l.spec.in, BF16T), nil
}

// done records that the GEMMs reading the current weight have been issued; its buffer is free after them.
func (p *weightPipe) done() error {
	err := p.free[p.pos%2].Record(p.d.Stream)
	p.pos++
	return err
}
