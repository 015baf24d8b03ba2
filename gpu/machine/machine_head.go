//go:build t2mcuda

package machine

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/ops"
	"github.com/t2m/t2m/model"
)

// The head rows (model.ModeLossHeadRows): after the last layer's attention, the graph gathers the rows the
// loss reads (GatherRowsOp, by model.HeadRows' layout of the Run's labels), runs the last layer's o
// projection, MLP and the final norm and loss on them, and its backward scatters their gradients back
// (ScatterRowsOp). The buffers stay [N, C]; a node on the head rows covers their leading headRows rows, every
// other node the Run's rN.

// markHeadRows marks the nodes on the head rows (headNodes) of the machine's final order (after
// recomputation, whose copies read copies).
func (m *Machine) markHeadRows() error {
	head, err := headNodes(m.order, m.args, m.N)
	if err != nil || head == nil {
		return err
	}
	if m.g.HeadIndex == nil || m.g.HeadLabels == nil {
		return fmt.Errorf("gpu: machine: the graph gathers head rows but has no head index or head labels input " +
			"(not built by model.Build in ModeLossHeadRows)")
	}
	m.head = head
	return nil
}

// rows is the number of rows node i's launch covers in this Run: the head rows for a node on them
// (markHeadRows), else the Run's rN.
func (m *Machine) rows(i int) int {
	if m.head != nil && m.head[i] {
		return m.headRows
	}
	return m.rN
}

// dropoutDims is the dropout launch shape of node i over cols columns: the Run's [rB·rT, C] layout, or on
// the head rows the leading headRows rows of HeadRows' [rB·rT, C] layout as one block, which is where the
// CPU's DropoutOp on the gathered tensor draws their mask (by flat index p·C + c of gathered row p).
func (m *Machine) dropoutDims(i, cols int) ops.DropoutDims {
	if m.head != nil && m.head[i] {
		return ops.DropoutDims{B: 1, Tp: m.headRows, Tl: m.headRows, C: cols}
	}
	return ops.DropoutDims{B: m.rB, Tp: m.rT, Tl: m.rT, C: cols}
}

// headRowsQuantum is the multiple the head rows are rounded up to (16-byte rows of bf16 products and
// copies stay aligned in any case; whole groups of 8 rows keep the products' row tiles simple).
const headRowsQuantum = 8

// setHeadRows lays out this Run's head rows from its labels [rB, rT] (model.HeadRows at the Run's shape,
// what the CPU graph of that shape binds), uploads the index and the gathered labels to their input nodes'
// buffers, and sets headRows: HeadRows' rows rounded up to headRowsQuantum (at most rN), or that many zero
// rows when no row has a target, so that every head launch has rows and the last layer's LoRA gradients
// come out zero (as on the CPU) instead of keeping the last Run's. The head rows are no longer whole blocks
// of rT: a packed Run's single row of rT = rN tokens would make them all of its rows.
func (m *Machine) setHeadRows(labels []int32) error {
	if m.head == nil {
		return nil
	}
	index, headLabels, rows, err := model.HeadRows(labels, m.rB, m.rT)
	if err != nil {
		return fmt.Errorf("gpu: machine: %w", err)
	}
	m.headRows = min(m.rN, max(rows+headRowsQuantum-1, headRowsQuantum)/headRowsQuantum*headRowsQuantum)
	for _, u := range []struct {
		name string
		i    int
		v    []int32
	}{{"head index", m.index[m.g.HeadIndex], index}, {"head labels", m.index[m.g.HeadLabels], headLabels}} {
		if err := cuda.Upload(m.d, m.out[u.i], u.v); err != nil {
			return fmt.Errorf("gpu: machine: %s: %w", u.name, err)
		}
	}
	return nil
}
