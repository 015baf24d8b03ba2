package machine

import (
	"fmt"
	"strings"

	"github.com/t2m/t2m/model"
	G "gorgonia.org/gorgonia"
)

// This file is the machine's plain-Go part of the head rows (model.ModeLossHeadRows), tested in every build;
// machine_head.go uses it.

// isGorgoniaAdd reports gorgonia's own element-wise "+", which gorgonia.Grad inserts to sum the gradients
// of a node read by several ops.
func isGorgoniaAdd(n *G.Node) bool {
	return n.Op() != nil && fmt.Sprintf("%T", n.Op()) == "gorgonia.elemBinOp" && strings.HasPrefix(n.Op().String(), "+")
}

// headNodes marks the steps on the head rows of a graph whose steps are order (topological, inputs first;
// a recomputed node may appear twice) with inputs args (step positions), N the rows of its activations: each
// GatherRowsOp and every step that reads a marked step, except a ScatterRowsOp (its output has the Run's
// rows again). That is the gathered forward (o projection, residual adds, norms, MLP, LoRA dropouts, the
// loss) and, because every gradient step reads the forward tensor or the gradient it differentiates, their
// gradients down to the scatters' inputs, gorgonia's sums among them and the LoRA weight gradients (which sum
// over the head rows). A marked step must be a row-wise op and read no unmarked activation of N rows (the
// two layouts meet only in a gather or a scatter), and a scatter must read a marked step: anything else is
// a graph the machine does not know, an error. Without a gather the result is nil.
func headNodes(order []*G.Node, args [][]int, N int) ([]bool, error) {
	head := make([]bool, len(order))
	found := false
	for i, node := range order {
		switch node.Op().(type) {
		case nil:
			continue
		case *model.GatherRowsOp:
			head[i], found = true, true
			continue
		case *model.ScatterRowsOp:
			if !head[args[i][0]] {
				return nil, fmt.Errorf("gpu: machine: %s scatters rows that no gather made", node.Name())
			}
			continue
		}
		for _, a := range args[i] {
			head[i] = head[i] || head[a]
		}
	}
	if !found {
		return nil, nil
	}
	for i, node := range order {
		if !head[i] {
			continue
		}
		switch node.Op().(type) {
		case *model.GatherRowsOp:
			continue // reads x of N rows
		case *model.RMSNormOp, *model.RMSNormGradOp, *model.LinearOp, *model.LinearGradInputOp, *model.LoRAGradOp,
			*model.AddOp, *model.SwiGLUOp, *model.SwiGLUGradOp, *model.DropoutOp, *model.LMHeadCrossEntropyOp,
			*model.LMHeadCrossEntropyGradOp:
		default:
			if !isGorgoniaAdd(node) {
				return nil, fmt.Errorf("gpu: machine: %s (%v) reads the gathered head rows but is not a row-wise op",
					node.Name(), node.Op())
			}
		}
		for _, a := range args[i] {
			in := order[a]
			if s := in.Shape(); !head[a] && in.Op() != nil && len(s) == 2 && s[0] == N {
				return nil, fmt.Errorf("gpu: machine: %s reads both the gathered head rows and every row (%s)",
					node.Name(), in.Name())
			}
		}
	}
	return head, nil
}
