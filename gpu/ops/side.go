//go:build t2mcuda

package ops

import (
	"fmt"

	"gorgonia.org/cu"

	"github.com/t2m/t2m/gpu/cuda"
)

// Side is a second stream for work that can run beside the main stream's (d.Stream), with the two events
// that order it: Fork makes the side stream wait for everything queued on the main stream so far, Join makes
// the main stream wait for everything queued on the side stream so far. Kernels that leave SMs idle in their
// last wave (causal attention's uneven blocks) then fill each other's tails.
type Side struct {
	Stream     cu.Stream
	fork, join *cuda.SyncEvent
}

// NewSide creates a side stream of d and its events.
func NewSide(d *cuda.Device) (*Side, error) {
	s, err := d.NewStream()
	if err != nil {
		return nil, err
	}
	side := &Side{Stream: s}
	if side.fork, err = d.NewSyncEvent(); err != nil {
		return nil, err
	}
	if side.join, err = d.NewSyncEvent(); err != nil {
		return nil, err
	}
	return side, nil
}

// Close destroys the side stream (its events are left to the context).
func (s *Side) Close() error {
	if err := s.Stream.Destroy(); err != nil {
		return fmt.Errorf("gpu: destroying a side stream: %w", err)
	}
	return nil
}

// Fork orders the side stream's next work after the main stream's work queued so far.
func (s *Side) Fork(d *cuda.Device) error {
	if err := s.fork.Record(d.Stream); err != nil {
		return err
	}
	return s.fork.Wait(s.Stream)
}

// Join orders the main stream's next work after the side stream's work queued so far.
func (s *Side) Join(d *cuda.Device) error {
	if err := s.join.Record(s.Stream); err != nil {
		return err
	}
	return s.join.Wait(d.Stream)
}
