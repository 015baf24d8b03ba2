package model

import (
	"math"
	"math/rand"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

const ign = -100 // the ignore index, short for the tables below

// TestHeadRowsLayout checks HeadRows on hand-made cases: the target rows (row n predicts labels[n+1] inside
// its sequence) in order, T−1 to a gathered block, each followed by its label.
func TestHeadRowsLayout(t *testing.T) {
	for _, c := range []struct {
		name          string
		batch, seq    int
		labels        []int32
		index, labelH []int32
		rows          int
	}{
		{name: "doc example: the fourth target starts a second block", batch: 2, seq: 4,
			labels: []int32{ign, ign, 5, 6, ign, 7, 8, ign},
			index:  []int32{1, 2, 4, -1, 5, -1, -1, -1},
			labelH: []int32{ign, 5, 6, 7, ign, 8, ign, ign}, rows: 6},
		{name: "no targets", batch: 2, seq: 3,
			labels: []int32{ign, ign, ign, ign, ign, ign},
			index:  []int32{-1, -1, -1, -1, -1, -1},
			labelH: []int32{ign, ign, ign, ign, ign, ign}, rows: 0},
		{name: "every row a target", batch: 2, seq: 3,
			labels: []int32{1, 2, 3, 4, 5, 6},
			index:  []int32{0, 1, -1, 3, 4, -1},
			labelH: []int32{ign, 2, 3, ign, 5, 6}, rows: 6},
		{name: "T = 2: one target per block", batch: 3, seq: 2,
			labels: []int32{ign, 1, ign, ign, ign, 2},
			index:  []int32{0, -1, 4, -1, -1, -1},
			labelH: []int32{ign, 1, ign, 2, ign, ign}, rows: 4},
		{name: "last label of a sequence is a target, its last row predicts nothing", batch: 2, seq: 3,
			labels: []int32{ign, ign, 7, 8, ign, ign},
			index:  []int32{1, -1, -1, -1, -1, -1},
			labelH: []int32{ign, 7, ign, ign, ign, ign}, rows: 2},
		{name: "T = 1: no row predicts", batch: 3, seq: 1,
			labels: []int32{5, 6, 7},
			index:  []int32{-1, -1, -1},
			labelH: []int32{ign, ign, ign}, rows: 0},
	} {
		index, labelH, rows, err := HeadRows(c.labels, c.batch, c.seq)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !slices.Equal(index, c.index) || !slices.Equal(labelH, c.labelH) || rows != c.rows {
			t.Errorf("%s: index %v, labels %v, rows %d; want %v, %v, %d", c.name, index, labelH, rows, c.index,
				c.labelH, c.rows)
		}
	}
	for _, c := range []struct {
		labels     []int32
		batch, seq int
		want       string
	}{{[]int32{1, 2, 3}, 2, 2, "3 labels"}, {nil, 0, 4, "must be > 0"}} {
		if _, _, _, err := HeadRows(c.labels, c.batch, c.seq); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("HeadRows(%v, %d, %d): error %v, want one containing %q", c.labels, c.batch, c.seq, err, c.want)
		}
	}
}

// TestHeadRowsSameLoss checks HeadRows' promise on random batches: the fused lm_head + cross-entropy over the
// gathered rows with the gathered labels, and over their leading rows as one block, is the original's, to
// the bit (the same per-row losses, summed in the same order with zeros between), and its gradient is the
// original's, gathered.
func TestHeadRowsSameLoss(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	const hid, voc = 4, 9
	w := randSlice(rng, voc*hid, 0.5)
	for trial := range 200 {
		batch, seq := 1+rng.Intn(4), 1+rng.Intn(6)
		n := batch * seq
		labels := make([]int32, n)
		density := rng.Float64()
		for k := range labels {
			labels[k] = ign
			if rng.Float64() < density {
				labels[k] = int32(rng.Intn(voc))
			}
		}
		index, labelH, rows, err := HeadRows(labels, batch, seq)
		if err != nil {
			t.Fatal(err)
		}
		m := CountCompletionTokens(labels, batch, seq)
		if got := CountCompletionTokens(labelH, batch, seq); got != m {
			t.Fatalf("trial %d: %d targets in the gathered labels, %d in the original", trial, got, m)
		}
		if rows > n || (m == 0) != (rows == 0) {
			t.Fatalf("trial %d [%d, %d]: rows %d for %d targets", trial, batch, seq, rows, m)
		}
		for p := rows; p < n; p++ {
			if index[p] != -1 || labelH[p] != ign {
				t.Fatalf("trial %d: gathered row %d ≥ rows %d has index %d, label %d", trial, p, rows, index[p], labelH[p])
			}
		}
		if m == 0 {
			continue
		}
		h := randSlice(rng, n*hid, 1)
		hg := make([]float32, n*hid)
		if err := GatherRows(hg, h, index, n, hid); err != nil {
			t.Fatal(err)
		}
		s := CEShape{Batch: batch, Seq: seq, Hidden: hid, Vocab: voc, IgnoreIndex: ign}
		want, err := LMHeadCrossEntropyForward(h, w, labels, float32(m), s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := LMHeadCrossEntropyForward(hg, w, labelH, float32(m), s)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("trial %d [%d, %d] labels %v: gathered loss %v, original %v", trial, batch, seq, labels, got, want)
		}
		// The leading rows alone, as one block (what the GPU machine computes): the same sum.
		one := CEShape{Batch: 1, Seq: rows, Hidden: hid, Vocab: voc, IgnoreIndex: ign}
		if got, err := LMHeadCrossEntropyForward(hg[:rows*hid], w, labelH[:rows], float32(m), one); err != nil || got != want {
			t.Fatalf("trial %d [%d, %d] labels %v: loss over the %d leading gathered rows %v (%v), original %v", trial, batch,
				seq, labels, rows, got, err, want)
		}
		dh, dhg := make([]float32, n*hid), make([]float32, n*hid)
		if err := LMHeadCrossEntropyBackward(dh, h, w, labels, float32(m), 1, s); err != nil {
			t.Fatal(err)
		}
		if err := LMHeadCrossEntropyBackward(dhg, hg, w, labelH, float32(m), 1, s); err != nil {
			t.Fatal(err)
		}
		back := make([]float32, n*hid)
		if err := ScatterRows(back, dhg, index, n, hid); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(back, dh) {
			t.Fatalf("trial %d: scattered gathered dh %v, original %v", trial, back, dh)
		}
	}
}

// TestGatherScatterRows checks the two functions against their definitions, and their index checks.
func TestGatherScatterRows(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8} // [4, 2]
	index := []int32{2, -1, 0, 3, -1}      // [5]
	out := make([]float32, 10)
	for k := range out {
		out[k] = 99 // overwritten, zeros included
	}
	if err := GatherRows(out, x, index, 4, 2); err != nil {
		t.Fatal(err)
	}
	if want := []float32{5, 6, 0, 0, 1, 2, 7, 8, 0, 0}; !slices.Equal(out, want) {
		t.Errorf("GatherRows = %v, want %v", out, want)
	}
	dy := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10} // [5, 2]
	dx := []float32{9, 9, 9, 9, 9, 9, 9, 9}
	if err := ScatterRows(dx, dy, index, 4, 2); err != nil {
		t.Fatal(err)
	}
	if want := []float32{5, 6, 0, 0, 1, 2, 7, 8}; !slices.Equal(dx, want) {
		t.Errorf("ScatterRows = %v, want %v (row 1 is named by no index: zero)", dx, want)
	}
	for _, c := range []struct {
		index   []int32
		scatter bool
		want    string
	}{
		{[]int32{0, 4}, false, "outside [−1, 4)"},
		{[]int32{-2}, true, "outside [−1, 4)"},
		{[]int32{1, -1, 1}, true, "second time"},
	} {
		var err error
		if c.scatter {
			err = ScatterRows(make([]float32, 8), make([]float32, 2*len(c.index)), c.index, 4, 2)
		} else {
			err = GatherRows(make([]float32, 2*len(c.index)), x, c.index, 4, 2)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("index %v (scatter %v): error %v, want one containing %q", c.index, c.scatter, err, c.want)
		}
	}
	if err := GatherRows(make([]float32, 4), x, []int32{0, 1, 2}, 4, 2); err == nil {
		t.Error("GatherRows into too short an output: no error")
	}
}

// TestGatherScatterRowsOpGrad differentiates the ops through gorgonia: L = Σ r ⊙ GatherRows(x) has
// dL/dx = ScatterRows(r) (the ScatterRowsOp node gorgonia.Grad builds), checked exactly and by finite
// differences; likewise L = Σ r ⊙ ScatterRows(dy) has dL/d(dy) = GatherRows(r).
func TestGatherScatterRowsOpGrad(t *testing.T) {
	const rows, cols, batch, seq = 5, 3, 2, 3
	index := []int32{4, 0, -1, 2, -1, -1} // [B, T]
	rng := rand.New(rand.NewSource(3))
	for _, scatter := range []bool{false, true} {
		inRows, outRows := rows, batch*seq
		if scatter {
			inRows, outRows = batch*seq, rows
		}
		x, r := randSlice(rng, inRows*cols, 1), randSlice(rng, outRows*cols, 1)
		eg := G.NewGraph()
		xn := G.NewMatrix(eg, G.Float32, G.WithShape(inRows, cols), G.WithName("x"), G.WithValue(dense(x, inRows, cols)))
		in := G.NewMatrix(eg, G.Int32, G.WithShape(batch, seq), G.WithName("index"),
			G.WithValue(tensor.New(tensor.WithShape(batch, seq), tensor.WithBacking(index))))
		rn := G.NewMatrix(eg, G.Float32, G.WithShape(outRows, cols), G.WithName("r"), G.WithValue(dense(r, outRows, cols)))
		var op G.Op = &GatherRowsOp{Name: "g"}
		if scatter {
			op = &ScatterRowsOp{Name: "g", Rows: rows}
		}
		y := G.Must(G.ApplyOp(op, xn, in))
		loss := G.Must(G.Sum(G.Must(G.HadamardProd(y, rn))))
		grads, err := G.Grad(loss, xn)
		if err != nil {
			t.Fatal(err)
		}
		wantOp := "ScatterRows"
		if scatter {
			wantOp = "GatherRows"
		}
		if !strings.HasPrefix(grads[0].Op().String(), wantOp) {
			t.Errorf("scatter %v: gradient node %v, want a %s", scatter, grads[0].Op(), wantOp)
		}
		vm := G.NewTapeMachine(eg)
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		got, err := Values(grads[0])
		if err != nil {
			t.Fatal(err)
		}
		vm.Close()
		want := make([]float32, len(x))
		f := func() []float32 { // the op's output for the current x
			o := make([]float32, len(r))
			if scatter {
				if err := ScatterRows(o, x, index, rows, cols); err != nil {
					t.Fatal(err)
				}
			} else if err := GatherRows(o, x, index, rows, cols); err != nil {
				t.Fatal(err)
			}
			return o
		}
		if scatter {
			err = GatherRows(want, r, index, rows, cols)
		} else {
			err = ScatterRows(want, r, index, rows, cols)
		}
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("scatter %v: gradient %v, want %v", scatter, got, want)
		}
		checkGrad(t, wantOp+" adjoint", rng, x, f, r, got)
	}
}

// TestHeadRowsLossAndGrads builds the PEFT fixture's training graph in ModeLoss and in ModeLossHeadRows
// (same weights, adapter and batch, no dropout) and checks that loss and every LoRA gradient are bit-equal:
// every row the head rows keep is computed by the same row-wise functions as before, the per-row losses are
// summed in the same order (zeros between), and each LoRA gradient's sum over rows meets the same nonzero
// terms in the same order (the rows left out contribute exact zeros in ModeLoss: their dy is 0).
func TestHeadRowsLossAndGrads(t *testing.T) {
	f := loadFixture(t)
	lora := loadPEFTAdapter(t, filepath.Join(fixtureDir, "adapter"))
	run := func(mode Mode) *Graph {
		g, err := Build(f.weights, lora, f.b, f.t, mode)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		if err := g.BuildGrad(); err != nil {
			t.Fatal(err)
		}
		if err := g.Run(f.batch); err != nil {
			t.Fatal(err)
		}
		return g
	}
	base, head := run(ModeLoss), run(ModeLossHeadRows)
	if base.HeadIndex != nil || head.HeadIndex == nil || head.HeadLabels == nil {
		t.Fatalf("HeadIndex %v in ModeLoss, %v and HeadLabels %v in ModeLossHeadRows", base.HeadIndex, head.HeadIndex,
			head.HeadLabels)
	}
	_, _, rows, err := HeadRows(f.batch.Labels, f.b, f.t)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.b * f.t; rows >= n {
		t.Fatalf("the fixture's head rows are %d of %d: the test would not leave any row out", rows, n)
	}
	lb, err := Values(base.Loss)
	if err != nil {
		t.Fatal(err)
	}
	lh, err := Values(head.Loss)
	if err != nil {
		t.Fatal(err)
	}
	if lb[0] != lh[0] {
		t.Errorf("loss: ModeLoss %.9g, ModeLossHeadRows %.9g", lb[0], lh[0])
	}
	last := layerPrefix(f.weights.Config.NumLayers - 1)
	checked := 0
	for k, l := range base.LoRA {
		if head.LoRA[k].Module != l.Module {
			t.Fatalf("LoRA module %d: %s and %s", k, l.Module, head.LoRA[k].Module)
		}
		for _, p := range []struct {
			which      string
			base, head *G.Node
		}{{"A", l.GradA, head.LoRA[k].GradA}, {"B", l.GradB, head.LoRA[k].GradB}} {
			want, err := Values(p.base)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Values(p.head)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				diff := 0.0
				for i := range got {
					diff = math.Max(diff, math.Abs(float64(got[i]-want[i])))
				}
				t.Errorf("d loss / d %s.lora_%s differs (max |difference| %.3g)", l.Module, p.which, diff)
			}
			if strings.HasPrefix(l.Module, last) && !slices.ContainsFunc(got, func(v float32) bool { return v != 0 }) {
				t.Errorf("d loss / d %s.lora_%s is zero: the comparison would not see the gathered rows", l.Module, p.which)
			}
			checked++
		}
	}
	t.Logf("loss %.7f, %d LoRA gradients bit-equal, head rows %d of %d", lh[0], checked, rows, f.b*f.t)
}
