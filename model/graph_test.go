package model

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainingGraphOps checks the promise doc.go makes to the GPU executor: a training graph (LoRA with
// dropout, loss, gorgonia.Grad) holds only this package's ops, gorgonia's "+" on two tensors of equal
// shape (gradient accumulation), the constant 1 that seeds the gradient, and input nodes; in
// ModeLossHeadRows also the two gathers of the last layer, their scatters and two more int32 inputs.
func TestTrainingGraphOps(t *testing.T) {
	for _, mode := range []Mode{ModeLoss, ModeLossHeadRows} {
		testTrainingGraphOps(t, mode)
	}
}

func testTrainingGraphOps(t *testing.T, mode Mode) {
	f := loadFixture(t)
	lora := loadPEFTAdapter(t, filepath.Join(fixtureDir, "adapter"))
	lora.Dropout = 0.1
	g, err := Build(f.weights, lora, f.b, f.t, mode)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.BuildGrad(); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, n := range g.G.AllNodes() {
		switch op := n.Op().(type) {
		case nil:
			counts["input"]++
		case *EmbeddingOp, *RMSNormOp, *RMSNormGradOp, *LinearOp, *LinearGradInputOp, *LoRAGradOp, *RoPEOp,
			*AttentionOp, *AttentionGradOp, *SliceOp, *SwiGLUOp, *SwiGLUGradOp, *AddOp, *DropoutOp,
			*LMHeadCrossEntropyOp, *LMHeadCrossEntropyGradOp, *GatherRowsOp, *ScatterRowsOp:
			counts[strings.SplitN(op.String(), "{", 2)[0]]++
		default:
			switch {
			case op.String() == "+ false" && len(Inputs(n)) == 2 && Inputs(n)[0].Shape().Eq(Inputs(n)[1].Shape()):
				counts["gorgonia +"]++
			case n.IsScalar() && strings.HasPrefix(op.String(), "const"):
				counts["gorgonia const"]++
			default:
				t.Errorf("node %v has op %T %v, which the GPU executor does not know", n, op, op)
			}
		}
	}
	layers := f.weights.Config.NumLayers
	head := 0 // the last layer's two gathers (attention output, residual), their scatters, index and labels
	if mode == ModeLossHeadRows {
		head = 2
	}
	for name, want := range map[string]int{
		"GatherRows": head, "ScatterRows": head,
		"Linear": 7 * layers, "LoRAGradA": 6 * layers, "LoRAGradB": 6 * layers, "LoRAGradX": 6 * layers,
		// Backward dropouts exist only where the input depends on a LoRA parameter: not for layer 0's
		// q, k, v, whose input is the normed embedding.
		"Dropout": 6*layers + 6*layers - 3, "Attention": layers, "AttentionGrad": layers, "gorgonia const": 1,
		"input": 4 + 1 + 2*6*layers + head, // ids, positions, mask, labels; numItems; A and B per adapted module
	} {
		if counts[name] != want {
			t.Errorf("mode %d: %d %s nodes, want %d", mode, counts[name], name, want)
		}
	}
	// Inputs gives arguments in order: every Linear with a split LoRA input reads (x, A, B, dropout(x)).
	for _, n := range g.G.AllNodes() {
		if op, ok := n.Op().(*LinearOp); ok && op.Split {
			in := Inputs(n)
			if len(in) != 4 || in[1].Name() != op.Name+".lora_A" || in[2].Name() != op.Name+".lora_B" {
				t.Fatalf("%v inputs %v, want x, %s.lora_A, %s.lora_B, dropout", op, in, op.Name, op.Name)
			}
			if _, ok := in[3].Op().(*DropoutOp); !ok {
				t.Fatalf("%v: fourth input %v is not the dropout", op, in[3])
			}
		}
	}
	t.Logf("mode %d: %v", mode, counts)
}
