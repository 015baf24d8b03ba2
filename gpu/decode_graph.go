//go:build t2mcuda

package gpu

import (
	"fmt"
	"os"

	"github.com/t2m/t2m/gpu/cuda"
)

// decodeGraphs says whether decode steps run as CUDA graphs: yes unless T2M_GPU_GRAPHS=0.
func decodeGraphs() bool { return os.Getenv("T2M_GPU_GRAPHS") != "0" }

// stepGraphs runs a decoder's steps as CUDA graphs, one per step size (rows): a step of a size seen once
// before is captured (every launch of its forward: embedding, the projections, RoPE, the cache appends and
// decode attention, lm_head) and replayed from then on, so a step costs one launch of host time instead of
// one per kernel (hundreds at the 7B; at batch 1 the host's launches, not the GPU, bound a step). What
// changes between steps — the ids, positions and slots — lies in the decoder's meta buffer, uploaded before
// each step and read by the kernels from there; the buffers are the same for a size until the caches are
// released (reset). The first step of a size runs eagerly, so every kernel module is loaded before a capture.
// A capture that fails (something in the forward that a capture cannot hold) turns graphs off for the
// decoder: the step and every later one run eagerly, as with T2M_GPU_GRAPHS=0.
type stepGraphs struct {
	seen     map[int]bool
	graphs   map[int]*cuda.Graph
	off      error // why graphs were turned off, or nil
	replayed int   // steps run from a graph (tests)
}

// run runs one step's forward of rows rows: f, or its graph.
func (s *stepGraphs) run(d *cuda.Device, rows int, f func() error) error {
	if s == nil || s.off != nil {
		return f()
	}
	if g, ok := s.graphs[rows]; ok {
		s.replayed++
		return d.Replay(g)
	}
	if !s.seen[rows] {
		if s.seen == nil {
			s.seen = map[int]bool{}
		}
		s.seen[rows] = true
		return f()
	}
	g, err := d.Capture(f)
	if err != nil {
		s.off = fmt.Errorf("decode steps of %d rows: %w", rows, err)
		return f() // nothing ran during the capture
	}
	if s.graphs == nil {
		s.graphs = map[int]*cuda.Graph{}
	}
	s.graphs[rows] = g
	s.replayed++
	return d.Replay(g)
}

// reset frees the graphs: the buffers they name are about to be released.
func (s *stepGraphs) reset() {
	if s == nil {
		return
	}
	for _, g := range s.graphs {
		_ = g.Close()
	}
	s.graphs, s.seen = nil, nil
}
