//go:build t2mcuda

package cuda

// #include "cgo_cuda.h"
import "C"

import "fmt"

// Graph is a captured sequence of work on a device's stream (a CUDA graph), replayed by one Replay: the
// kernels, cuBLAS calls and asynchronous copies with the arguments they had when captured, so a replay
// costs one launch of host time instead of one per kernel.
type Graph struct {
	graph C.CUgraph
	exec  C.CUgraphExec
}

// Capture records what f enqueues on d's stream into a Graph, without running it. f must enqueue only
// stream-ordered work whose arguments stay valid for every replay (the buffers it reads and writes, not
// their contents, are fixed): no synchronous copy, memset, allocation, module load or Sync, which fail the
// capture (the error is returned, nothing has run, and the stream works as before).
func (d *Device) Capture(f func() error) (*Graph, error) {
	s := rawStream(d.Stream)
	if err := cuErr(int(C.t2m_graph_begin(s))); err != nil {
		return nil, fmt.Errorf("gpu: beginning a graph capture: %w", err)
	}
	ferr := f()
	var g C.CUgraph
	eerr := cuErr(int(C.t2m_graph_end(s, &g)))
	if ferr != nil || eerr != nil {
		if g != nil {
			C.t2m_graph_destroy(nil, g)
		}
		if ferr != nil {
			return nil, fmt.Errorf("gpu: graph capture: %w", ferr)
		}
		return nil, fmt.Errorf("gpu: ending a graph capture: %w", eerr)
	}
	gr := &Graph{graph: g}
	if err := cuErr(int(C.t2m_graph_instantiate(&gr.exec, g))); err != nil {
		C.t2m_graph_destroy(nil, g)
		return nil, fmt.Errorf("gpu: instantiating a captured graph: %w", err)
	}
	return gr, nil
}

// Replay enqueues g on d's stream (asynchronously, like a launch).
func (d *Device) Replay(g *Graph) error {
	if g == nil || g.exec == nil {
		return fmt.Errorf("gpu: replaying a closed graph")
	}
	if err := cuErr(int(C.t2m_graph_launch(g.exec, rawStream(d.Stream)))); err != nil {
		return fmt.Errorf("gpu: replaying a graph: %w", err)
	}
	return nil
}

// Close frees g; a closed Graph cannot be replayed.
func (g *Graph) Close() error {
	if g == nil || (g.exec == nil && g.graph == nil) {
		return nil
	}
	err := cuErr(int(C.t2m_graph_destroy(g.exec, g.graph)))
	g.exec, g.graph = nil, nil
	return err
}
