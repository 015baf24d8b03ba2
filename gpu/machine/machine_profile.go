//go:build t2mcuda

package machine

import (
	"fmt"
	"strings"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/model"
	G "gorgonia.org/gorgonia"
)

// profiler times a machine's launches with device events, by kind of op (Machine.SetProfile): where the
// time of a training step goes, measured on the device rather than inferred. NF4 dequantization, which
// runs inside the launches of linear ops, is also counted on its own.
type profiler struct {
	pending  []timedLaunch
	ms       map[string]float64 // device milliseconds by kind, summed over the profiled Runs
	launches map[string]int     // timed launches by kind, summed over the profiled Runs
	runs     int
}

type timedLaunch struct {
	kind       string
	start, end *cuda.Event
}

// SetProfile turns launch timing on or off (and clears what was timed). While on, each Run records a pair
// of events around every launch, which costs some host time per launch; the device times stay those of
// the kernels.
func (m *Machine) SetProfile(on bool) {
	m.prof = nil
	if on {
		m.prof = &profiler{ms: map[string]float64{}, launches: map[string]int{}}
	}
}

// Profile returns the device milliseconds per profiled Run by kind of op, and the number of Runs. Kinds are
// the model's op types ("LinearOp", "AttentionGradOp", ...; "gorgonia +" for gradient sums, except a sum
// folded into its term's launch (foldSums), which counts under the term's kind), plus
// "of which NF4 dequantize" (inside the linear kinds), and "LMHeadCrossEntropyOp" for the fused loss.
func (m *Machine) Profile() (map[string]float64, int) {
	if m.prof == nil || m.prof.runs == 0 {
		return nil, 0
	}
	out := map[string]float64{}
	for k, v := range m.prof.ms {
		out[k] = v / float64(m.prof.runs)
	}
	return out, m.prof.runs
}

// timed runs f between two recorded events, counted under kind; without a profiler it only runs f.
func (m *Machine) timed(kind string, f func() error) error {
	if m.prof == nil {
		return f()
	}
	start, err := m.d.Record()
	if err != nil {
		return err
	}
	if err := f(); err != nil {
		return err
	}
	end, err := m.d.Record()
	if err != nil {
		return err
	}
	m.prof.pending = append(m.prof.pending, timedLaunch{kind, start, end})
	return nil
}

// collect adds the finished Run's launch times (after the device has synchronized).
func (m *Machine) collect() error {
	if m.prof == nil {
		return nil
	}
	for _, t := range m.prof.pending {
		ms, err := t.start.Millis(t.end)
		if err != nil {
			return err
		}
		m.prof.ms[t.kind] += ms
		m.prof.launches[t.kind]++
	}
	m.prof.pending = m.prof.pending[:0]
	m.prof.runs++
	return nil
}

// profileKind is the kind node i's launch counts under: its op's, or for a folded gradient sum, its term's
// (the sum runs as the term's kernel or GEMM writing onto the other operand).
func (m *Machine) profileKind(node *G.Node) string {
	if f, ok := m.sumFold[node]; ok {
		return opKind(f.term)
	}
	return opKind(node)
}

// opKind names a node's kind of op for the profile.
func opKind(node *G.Node) string {
	if isGorgoniaAdd(node) {
		return "gorgonia +"
	}
	if op, ok := node.Op().(*model.LoRAGradOp); ok {
		return fmt.Sprintf("LoRAGradOp %c", op.WRT)
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", node.Op()), "*model.")
}
