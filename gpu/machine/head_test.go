package machine

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/t2m/t2m/model"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// steps is a graph's nodes in the machine's order (gorgonia.Sort reversed: inputs first) with each node's
// inputs as positions, as build makes them.
func steps(t *testing.T, g *G.ExprGraph) ([]*G.Node, [][]int) {
	t.Helper()
	sorted, err := G.Sort(g)
	if err != nil {
		t.Fatal(err)
	}
	order, index := make([]*G.Node, 0, len(sorted)), map[*G.Node]int{}
	for i := len(sorted) - 1; i >= 0; i-- {
		index[sorted[i]] = len(order)
		order = append(order, sorted[i])
	}
	args := make([][]int, len(order))
	for i, n := range order {
		for _, in := range model.Inputs(n) {
			args[i] = append(args[i], index[in])
		}
	}
	return order, args
}

// TestHeadNodes checks which steps of a small two-layer training graph (LoRA with dropout on every
// projection) run on the head rows: none in ModeLoss; in ModeLossHeadRows the two gathers, layer 1's o
// projection, residual adds, post-attention norm and MLP, the final norm and the loss, and the gradients of
// all of them (their LoRA weight gradients and dropouts included), but no scatter and nothing of layer 0 or
// of layer 1's attention; and the same steps, with their copies, in the activation recomputation's schedule.
func TestHeadNodes(t *testing.T) {
	cfg := model.Config{HiddenSize: 32, IntermediateSize: 48, NumLayers: 2, NumHeads: 4, NumKVHeads: 2, HeadDim: 8,
		VocabSize: 61, RMSNormEps: 1e-6, RopeTheta: 10000, MaxPositionEmbeddings: 512, Dtype: "float32"}
	w, err := model.RandomWeights(cfg, 5, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	lp := model.RandomLoRA(w, 4, 0.1, rng.NormFloat64)
	lp.Dropout = 0.1
	const B, T = 2, 8
	for _, mode := range []model.Mode{model.ModeLoss, model.ModeLossHeadRows} {
		g, err := model.Build(w, lp, B, T, mode)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.BuildGrad(); err != nil {
			t.Fatal(err)
		}
		order, args := steps(t, g.G)
		head, err := headNodes(order, args, B*T)
		if err != nil {
			t.Fatal(err)
		}
		if mode == model.ModeLoss {
			if head != nil {
				t.Errorf("ModeLoss: head rows marked")
			}
			continue
		}
		kinds := map[string]int{}
		for i, n := range order {
			kind := strings.TrimPrefix(fmt.Sprintf("%T", n.Op()), "*model.")
			if isGorgoniaAdd(n) {
				kind = "+"
			}
			switch op := n.Op().(type) {
			case *model.LinearOp:
				last := strings.HasPrefix(op.Name, "model.layers.1.") && !strings.Contains(op.Name, "self_attn.q_proj") &&
					!strings.Contains(op.Name, "self_attn.k_proj") && !strings.Contains(op.Name, "self_attn.v_proj")
				if head[i] != last {
					t.Errorf("%s on the head rows: %v, want %v", op.Name, head[i], last)
				}
			case *model.ScatterRowsOp:
				if head[i] || !head[args[i][0]] {
					t.Errorf("%v: on the head rows %v, its input %v; want false, true", op, head[i], head[args[i][0]])
				}
			case *model.RoPEOp, *model.AttentionOp, *model.AttentionGradOp, *model.EmbeddingOp:
				if head[i] {
					t.Errorf("%v is on the head rows", n.Op())
				}
			}
			if head[i] {
				if d, ok := n.Op().(*model.DropoutOp); ok && d.Grad {
					kind += " grad"
				}
				kinds[kind]++
			}
		}
		want := map[string]int{"GatherRowsOp": 2, "LinearOp": 4, "AddOp": 2, "RMSNormOp": 2, "SwiGLUOp": 1,
			"LMHeadCrossEntropyOp": 1, "LMHeadCrossEntropyGradOp": 1, "RMSNormGradOp": 2, "SwiGLUGradOp": 2,
			"LinearGradInputOp": 4, "LoRAGradOp": 12, "DropoutOp": 4, "DropoutOp grad": 4}
		for k, n := range want {
			if kinds[k] != n {
				t.Errorf("%d %s on the head rows, want %d (all: %v)", kinds[k], k, n, kinds)
			}
		}
		if kinds["+"] == 0 {
			t.Errorf("no gradient sum on the head rows (all: %v)", kinds)
		}
		// The recomputation's schedule (what machine.recompute builds): copies of layer 1's steps that the
		// backward reads, gathers included, are on the head rows too, and the layouts still meet only there.
		bwd := make([]bool, len(order))
		for i, n := range order {
			bwd[i] = n.Op() != nil && fmt.Sprintf("%T", n.Op()) == "gorgonia.constantScalar"
			for _, a := range args[i] {
				bwd[i] = bwd[i] || bwd[a]
			}
		}
		index := map[*G.Node]int{}
		for i, n := range order {
			index[n] = i
		}
		var hidden []int
		for _, h := range g.Hidden {
			hidden = append(hidden, index[h])
		}
		s, err := RecomputeSchedule(args, make([][]int, len(order)), bwd, hidden)
		if err != nil {
			t.Fatal(err)
		}
		order2 := make([]*G.Node, len(s.Src))
		for e, i := range s.Src {
			order2[e] = order[i]
		}
		head2, err := headNodes(order2, s.Args, B*T)
		if err != nil {
			t.Fatal(err)
		}
		copies := 0
		seen := map[int]bool{}
		for e, i := range s.Src {
			if head2[e] != head[i] {
				t.Errorf("schedule entry %d (%v): on the head rows %v, its node %v", e, order[i].Op(), head2[e], head[i])
			}
			if seen[i] && head2[e] {
				copies++
			}
			seen[i] = true
		}
		if copies == 0 {
			t.Errorf("the recomputation repeats no step on the head rows: the check above saw no copy")
		}
		g.Close()
	}
}

// TestHeadNodesErrors checks the graphs headNodes refuses: a step that reads both layouts, a step that is
// not row-wise on the head rows, and a scatter of rows no gather made.
func TestHeadNodesErrors(t *testing.T) {
	const B, T, C = 2, 4, 8
	build := func(f func(x, idx, gx *G.Node) *G.Node) ([]*G.Node, [][]int) {
		eg := G.NewGraph()
		in := G.NewMatrix(eg, G.Float32, G.WithShape(B*T, C), G.WithName("in"))
		x := G.Must(G.ApplyOp(&model.AddOp{Name: "x"}, in, in)) // an activation of every row
		idx := G.NewMatrix(eg, G.Int32, G.WithShape(B, T), G.WithName("index"),
			G.WithValue(tensor.New(tensor.WithShape(B, T), tensor.WithBacking(make([]int32, B*T)))))
		gx := G.Must(G.ApplyOp(&model.GatherRowsOp{Name: "g"}, x, idx))
		f(x, idx, gx)
		return steps(t, eg)
	}
	for _, c := range []struct {
		name string
		f    func(x, idx, gx *G.Node) *G.Node
		want string
	}{
		{"add of both layouts", func(x, _, gx *G.Node) *G.Node {
			return G.Must(G.ApplyOp(&model.AddOp{Name: "a"}, gx, x))
		}, "reads both"},
		{"RoPE on the head rows", func(_, idx, gx *G.Node) *G.Node {
			return G.Must(G.ApplyOp(&model.RoPEOp{Name: "r", Heads: 1, HeadDim: C, Theta: 1e4}, gx, idx))
		}, "not a row-wise op"},
		{"scatter without a gather", func(x, idx, _ *G.Node) *G.Node {
			return G.Must(G.ApplyOp(&model.ScatterRowsOp{Name: "s", Rows: B * T}, x, idx))
		}, "no gather made"},
	} {
		order, args := build(c.f)
		if _, err := headNodes(order, args, B*T); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	order, args := build(func(_, idx, gx *G.Node) *G.Node {
		sum := G.Must(G.ApplyOp(&model.AddOp{Name: "a"}, gx, gx))
		return G.Must(G.ApplyOp(&model.ScatterRowsOp{Name: "s", Rows: B * T}, sum, idx))
	})
	if head, err := headNodes(order, args, B*T); err != nil || head == nil {
		t.Errorf("gather, add, scatter: %v, %v; want marked steps", head, err)
	}
}
