//go:build t2mcuda

package machine

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/ops"
	"github.com/t2m/t2m/model"
	G "gorgonia.org/gorgonia"
)

// What the machine folds into the launch of another node (see also machine_fuse.go): gradient sums into the
// op that makes one of their terms, and LoRA dropouts into the products that read them.

// sumFold is a gradient sum y = a + b whose term b is a LinearGradInputOp (dx = dy·W, with or without a
// merged LoRA term) or an RMSNormGradOp that only the sum reads: the sum runs b's launch itself, onto a,
// and b gets no buffer or launch of its own. term is b, other the sum's argument position of a, dep the
// position in the sum's deps of b's inputs (dy, and A, B with a merged LoRA term; or x, dy), which the sum
// reads instead of b.
//   - The GEMM accumulates into a's buffer (beta = 1): the sum is made in place, its node aliasing a's
//     buffer, which nothing reads after it (a is read by the sum only, and is a sum or a GEMM output itself).
//     That saves writing b and the sum's pass over a, b and y: three [N, C] transfers, against one more
//     read of a inside the GEMM, and the one rounding of a + dy·W is no longer two.
//   - RMSNorm's backward adds a as it writes the sum's own buffer (ops.RMSNormBackwardAdd), rounded as the
//     separate add rounded it.
type sumFold struct {
	term       *G.Node
	other, dep int
}

// foldSums finds the sums sumFold describes (after fuseDropoutAdds, whose sums it leaves alone).
func (m *Machine) foldSums(pinned, keep []bool) {
	readers := m.readerCounts()
	ownsBuffer := func(j int) bool { return readers[j] == 1 && !keep[j] && !pinned[j] && m.alias[j] == j && !m.f32[j] }
	for i, node := range m.order {
		if !isGorgoniaAdd(node) || len(m.args[i]) != 2 || m.args[i][0] == m.args[i][1] || m.alias[i] != i {
			continue
		}
		if _, fused := m.dropAdd[node]; fused {
			continue
		}
		for k, j := range m.args[i] {
			a := m.args[i][1-k]
			var inPlace bool
			switch m.order[j].Op().(type) {
			case *model.LinearGradInputOp:
				_, aFold := m.sumFold[m.order[a]]
				aSum := isGorgoniaAdd(m.order[a]) && (m.alias[a] == a || aFold)
				_, aLGI := m.order[a].Op().(*model.LinearGradInputOp)
				if !ownsBuffer(j) || readers[a] != 1 || keep[a] || m.f32[a] || m.preset[a] ||
					!(aSum || (aLGI && m.alias[a] == a)) {
					continue
				}
				inPlace = true
			case *model.RMSNormGradOp:
				if !ownsBuffer(j) {
					continue
				}
			default:
				continue
			}
			if m.sumFold == nil {
				m.sumFold, m.foldSkip = map[*G.Node]sumFold{}, map[*G.Node]bool{}
			}
			m.sumFold[node] = sumFold{term: m.order[j], other: 1 - k, dep: len(m.deps[i])}
			m.deps[i] = append(m.deps[i], m.args[j]...)
			m.foldSkip[m.order[j]], pinned[j] = true, true
			if inPlace {
				m.alias[i], pinned[i] = m.alias[a], true
			}
			break
		}
	}
}

// foldedSum runs sum i of f: b's launch onto a (see sumFold), into y (a's buffer for a GEMM).
func (m *Machine) foldedSum(i int, f sumFold) error {
	in, y, N := m.deps[i][f.dep:], m.out[i], m.rows(i)
	switch op := f.term.Op().(type) {
	case *model.LinearGradInputOp:
		return m.inputGrad(op, in, y, 1, N)
	case *model.RMSNormGradOp:
		cols := len(op.Norm.Weight)
		return ops.RMSNormBackwardAdd(m.d, y, m.out[in[1]], m.out[in[0]], m.vecs[op.Norm.Name], m.in(i, f.other), N, cols,
			op.Norm.Eps)
	}
	return fmt.Errorf("gpu: machine: no folded sum for %T", f.term.Op())
}

// readDropouts finds the LoRA dropouts (forward) whose output only their linear's LoRA branch reads: the
// LinearOp's fourth input (h = xl·Aᵀ) and its LoRAGradOps' first (dA = s·gᵀ·xl; 'B' and 'X' do not use it).
// Those products read the dropout's input through the mask instead (ops.LoRAGrad with Drop), so the dropout
// gets no buffer or launch: per LoRA linear, an [N, in] tensor neither written, read back nor kept from the
// forward to the backward (the input it drops is kept instead, which its other readers mostly keep anyway).
// Not with activation recomputation (which would launch the dropout again).
func (m *Machine) readDropouts(pinned, keep []bool) {
	type use struct{ node, arg int }
	uses := make([][]use, len(m.order))
	for i, args := range m.args {
		for k, a := range args {
			uses[a] = append(uses[a], use{i, k})
		}
	}
	for j, node := range m.order {
		if op, ok := node.Op().(*model.DropoutOp); !ok || op.Grad || keep[j] || pinned[j] || m.alias[j] != j ||
			node.Shape()[1]%8 != 0 || int64(m.N)*int64(node.Shape()[1]) > 1<<32 {
			continue
		}
		var lin *model.LinearOp
		ok := len(uses[j]) > 0
		for _, u := range uses[j] {
			switch op := m.order[u.node].Op().(type) {
			case *model.LinearOp:
				ok = ok && u.arg == 3 && op.Split && lin == nil && m.loraGradOn(op.Rank)
				lin = op
			case *model.LoRAGradOp:
				ok = ok && u.arg == 0
			default:
				ok = false
			}
		}
		for _, u := range uses[j] {
			if op, isGrad := m.order[u.node].Op().(*model.LoRAGradOp); isGrad && op.Lin != lin {
				ok = false
			}
		}
		if !ok || lin == nil {
			continue
		}
		if m.dropRead == nil {
			m.dropRead = map[*G.Node]bool{}
		}
		m.dropRead[node], pinned[j] = true, true
		for _, u := range uses[j] { // the readers read the dropout's input instead
			m.deps[u.node] = append(m.deps[u.node], m.args[j][0])
		}
	}
}

// readDropout gives the LoRA dropout that node i's argument k is, when readDropouts made it read as used:
// its input (what the product reads), drop probability (0 in an evaluation Run) and mask seed.
func (m *Machine) readDropout(i, k int) (x cuda.Buffer, p float32, seed uint64, ok bool) {
	if k >= len(m.args[i]) {
		return cuda.Buffer{}, 0, 0, false
	}
	j := m.args[i][k]
	drop := m.order[j]
	if !m.dropRead[drop] {
		return cuda.Buffer{}, 0, 0, false
	}
	op := drop.Op().(*model.DropoutOp)
	if p = op.P; m.run.Eval {
		p = 0
	}
	return m.out[m.args[j][0]], p, op.Seed(), true
}
