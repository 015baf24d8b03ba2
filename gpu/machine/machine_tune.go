//go:build t2mcuda

package machine

import (
	"fmt"
	"sort"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/model"
)

// tuneMinGain is the least speed-up for which TuneGEMMs leaves cuBLAS's default algorithm (cuda.BLAS.Tune):
// smaller gains measured alone did not survive inside the real run's steps (scripts/bench/NOTES.md,
// twentieth session). A test sets it below zero to take the fastest exact algorithm whatever its time.
var tuneMinGain = 0.08

// TuneGEMMs times the frozen weights' products, y = x·Wᵀ and dx = dy·W, at each row count in rows (the
// micro-batches' B·T that the Runs to come will have), so that cuda.BLAS.Tune can give each shape the
// fastest algorithm cuBLASLt offers with cuBLAS's default bits. Runs after it compute the same values,
// sooner where an algorithm was taken. The operands are a real weight of each shape (NF4 ones dequantized)
// and rows of the largest bf16 table (the embedding) as x and dy; the outputs go to two temporary device
// buffers, freed before it returns. Products on head rows, which few rows take, keep the default.
func (m *Machine) TuneGEMMs(rows []int) ([]cuda.GemmTuning, error) {
	type shape struct {
		out, in int
		grad    bool
	}
	weights := map[[2]int]*machineWeight{} // one weight of each [out, in], for both of its products
	var shapes []shape
	seen := map[shape]bool{}
	for i, node := range m.order {
		if m.head != nil && m.head[i] {
			continue
		}
		var f *model.Frozen
		grad := false
		switch op := node.Op().(type) {
		case *model.LinearOp:
			f = op.Weight
		case *model.LinearGradInputOp:
			f, grad = op.Lin.Weight, true
		default:
			continue
		}
		s := shape{f.Out, f.In, grad}
		if !seen[s] {
			seen[s] = true
			shapes = append(shapes, s)
		}
		if _, ok := weights[[2]int{f.Out, f.In}]; !ok {
			weights[[2]int{f.Out, f.In}] = m.lin[f]
		}
	}
	sort.Slice(shapes, func(a, b int) bool { // a weight's two products together: it is dequantized once
		x, y := shapes[a], shapes[b]
		if x.out != y.out {
			return x.out < y.out
		}
		if x.in != y.in {
			return x.in < y.in
		}
		return !x.grad && y.grad
	})
	maxRows, maxCols := 0, 0
	for _, r := range rows {
		if r <= 0 || r > m.N {
			return nil, fmt.Errorf("gpu: machine: tuning %d rows, the machine holds %d", r, m.N)
		}
		maxRows = max(maxRows, r)
	}
	for _, s := range shapes {
		maxCols = max(maxCols, s.out, s.in)
	}
	if len(shapes) == 0 || maxRows == 0 {
		return nil, nil
	}
	// Two outputs (the product, and the tuned algorithm's for the bit check), and the stand-in activations
	// when no table is large enough (tiny models: zeros).
	need := int64(maxRows) * int64(maxCols) * 2
	src := m.tuneSource(need)
	bufs := make([]cuda.Buffer, 0, 3)
	defer func() {
		for _, b := range bufs {
			_ = m.d.Free(b)
		}
	}()
	for len(bufs) < 2 || (src.Bytes == 0 && len(bufs) < 3) {
		b, err := m.d.Alloc(need)
		if err != nil {
			return nil, fmt.Errorf("gpu: machine: %d bytes to tune GEMMs in: %w", need, err)
		}
		bufs = append(bufs, b)
	}
	if src.Bytes == 0 {
		src = bufs[2]
		if err := m.d.Memset(src, 0); err != nil {
			return nil, err
		}
	}
	outs := bufs[:2]
	var res []cuda.GemmTuning
	var last *machineWeight
	var W cuda.Mat
	for _, s := range shapes {
		if w := weights[[2]int{s.out, s.in}]; w != last {
			var err error
			if W, err = m.dense(w); err != nil {
				return nil, err
			}
			last = w
		}
		for _, r := range rows {
			var t cuda.GemmTuning
			var err error
			if s.grad {
				dy, dx := cuda.M(src, r, s.out, cuda.BF16T), cuda.M(outs[0], r, s.in, cuda.BF16T)
				t, err = m.blas.Tune(false, false, dy, W, dx, cuda.M(outs[1], r, s.in, cuda.BF16T), tuneMinGain)
			} else {
				x, y := cuda.M(src, r, s.in, cuda.BF16T), cuda.M(outs[0], r, s.out, cuda.BF16T)
				t, err = m.blas.Tune(false, true, x, W, y, cuda.M(outs[1], r, s.out, cuda.BF16T), tuneMinGain)
			}
			if err != nil {
				return res, fmt.Errorf("gpu: machine: tuning [%d, %d] weight products at %d rows: %w", s.out, s.in, r, err)
			}
			res = append(res, t)
		}
	}
	return res, m.d.Sync()
}

// tuneSource is the largest bf16 table or dense weight on the device with at least need bytes, whose values
// stand in for activations while tuning; zero Buffer when none is that large.
func (m *Machine) tuneSource(need int64) cuda.Buffer {
	var best cuda.Buffer
	consider := func(b cuda.Buffer) {
		if b.Bytes >= need && b.Bytes > best.Bytes {
			best = b
		}
	}
	for _, b := range m.vecs {
		consider(b)
	}
	for _, w := range m.lin {
		if w.nf4 == nil {
			consider(w.dense)
		}
	}
	return best
}
