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
// the head rows the leading headRows rows of HeadRows' [rB·rT, C] layout, which is where the CPU's DropoutOp
// on the gathered tensor draws their mask (by flat index p·C + c of gathered row p; headRows is a multiple of
// rT).
func (m *Machine) dropoutDims(i, cols int) ops.DropoutDims {
	if m.head != nil && m.head[i] {
		return ops.DropoutDims{B: m.headRows / m.rT, Tp: m.rT, Tl: m.rT, C: cols}
	}
	return ops.DropoutDims{B: m.rB, Tp: m.rT, Tl: m.rT, C: cols}
}

// setHeadRows lays out this Run's head rows from its labels [rB, rT] (model.HeadRows at the Run's shape,
// what the CPU graph of that shape binds), uploads the index and the gathered labels to their input nodes'
// buffers, and sets headRows: HeadRows' rows, or one block of rT zero rows when no row has a target, so that
// every head launch has rows and the last layer's LoRA gradients come out zero (as on the CPU) instead of
// keeping the last Run's.
func (m *Machine) setHeadRows(labels []int32) error {
	if m.head == nil {
		return nil
	}
	index, headLabels, rows, err := model.HeadRows(labels, m.rB, m.rT)
	if err != nil {
		return fmt.Errorf("gpu: machine: %w", err)
	}
	m.headRows = max(rows, m.rT)
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
