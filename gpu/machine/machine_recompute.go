//go:build t2mcuda

package machine

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
	G "gorgonia.org/gorgonia"
)

// recompute turns the machine's per-node arrays (order, args, deps and what prepare set) into the entries
// of RecomputeSchedule, with the liveness inputs names, bytes, pinned and keep likewise: a recomputed
// entry is its node's launch once more, into a buffer of its own (planned like any activation), sharing
// the node's extra buffer (attention's lse, which the copy rewrites with the same values). Positions kept
// by the machine (index, alias, the attention and loss nodes) move to their node's first entry.
func (m *Machine) recompute(names []string, bytes []int64, pinned, keep []bool) ([]string, []int64, []bool, []bool, error) {
	n := len(m.order)
	bwd := make([]bool, n) // computed from the loss gradient's seed
	for i, node := range m.order {
		if isSeed(node) {
			bwd[i] = true
		}
		for _, a := range m.args[i] {
			bwd[i] = bwd[i] || bwd[a]
		}
	}
	var hidden []int
	for _, h := range m.g.Hidden {
		i, ok := m.index[h]
		if !ok {
			return nil, nil, nil, nil, fmt.Errorf("gpu: machine: recompute: checkpoint %s is not in the graph", h.Name())
		}
		hidden = append(hidden, i)
	}
	s, err := RecomputeSchedule(m.args, m.deps, bwd, hidden)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("gpu: machine: %w", err)
	}
	E := len(s.Src)
	first := make([]int, n) // node → its first entry
	for i := range first {
		first[i] = -1
	}
	for e, i := range s.Src {
		if first[i] < 0 {
			first[i] = e
		}
	}
	order := make([]*G.Node, E)
	out, extra := make([]cuda.Buffer, E), make([]cuda.Buffer, E)
	f32, preset, fusedAt, alias := make([]bool, E), make([]bool, E), make([]bool, E), make([]int, E)
	nm, by, pin, kp := make([]string, E), make([]int64, E), make([]bool, E), make([]bool, E)
	for e, i := range s.Src {
		copied := first[i] != e
		order[e], out[e], extra[e], f32[e], preset[e] = m.order[i], m.out[i], m.extra[i], m.f32[i], m.preset[i]
		nm[e], by[e], pin[e], kp[e] = names[i], bytes[i], pinned[i], keep[i]
		fusedAt[e] = m.fusedAt[i] && !copied
		alias[e] = e
		if m.alias[i] != i {
			alias[e] = first[m.alias[i]]
		}
		if copied {
			if pinned[i] || m.alias[i] != i {
				return nil, nil, nil, nil, fmt.Errorf("gpu: machine: recompute: %s is not an activation of its own", names[i])
			}
			nm[e], kp[e] = names[i]+" (recomputed)", false
		}
	}
	for node, i := range m.index {
		m.index[node] = first[i]
	}
	for op, i := range m.attnNode {
		m.attnNode[op] = first[i]
	}
	for op, i := range m.ceNode {
		m.ceNode[op] = first[i]
	}
	for op, i := range m.ceGrad {
		m.ceGrad[op] = first[i]
	}
	m.order, m.args, m.deps, m.out, m.extra = order, s.Args, s.Deps, out, extra
	m.f32, m.preset, m.fusedAt, m.alias = f32, preset, fusedAt, alias
	m.recomputed = s.Recomputed
	return nm, by, pin, kp, nil
}

// Recomputed is the number of launches a training Run repeats for activation recomputation (0 without).
func (m *Machine) Recomputed() int { return m.recomputed }
