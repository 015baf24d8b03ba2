//go:build t2mcuda

package cuda

// #include "cgo_cublaslt.h"
import "C"

import (
	"bytes"
	"fmt"
)

// GemmTuning is what Tune found for one product shape.
type GemmTuning struct {
	M, N, K        int
	TransA, TransB bool
	DefaultUs      float64 // cublasGemmEx, µs per product
	BestUs         float64 // the fastest exact cuBLASLt algorithm, µs (0: none ran)
	Candidates     int     // exact algorithms timed
	Switched       bool    // Gemm runs this shape with Chosen from now on
	Chosen         string  // the algorithm Gemm uses ("cublasGemmEx" when it stays)
}

// Tune times C = op(A)·op(B) with cuBLAS's default algorithm (cublasGemmEx) and with each algorithm
// cuBLASLt's heuristic offers that computes every output in one pass over K (no split-K: the default's
// bits), on the given operands. When the fastest is at least minGain faster (pickGemm), again when timed a
// second time, and its output equals the default's bit for bit (check is a second buffer shaped like C),
// every later Gemm of this shape (transpositions, sizes, strides and types) runs with it. So the results of
// a Run never depend on the tuning; only its speed does. A shape is tuned once; C and check are
// overwritten. Tune must not run while another goroutine uses b.
func (b *BLAS) Tune(transA, transB bool, A, B, Cm, check Mat, minGain float64) (GemmTuning, error) {
	k, err := gemmArgs(transA, transB, A, B, Cm)
	if err != nil {
		return GemmTuning{}, err
	}
	if check.Rows != Cm.Rows || check.Cols != Cm.Cols || check.ld() != Cm.ld() || check.DType != Cm.DType {
		return GemmTuning{}, fmt.Errorf("gpu: tune: check [%d, %d] is not shaped like C [%d, %d]", check.Rows,
			check.Cols, Cm.Rows, Cm.Cols)
	}
	if err := check.check("tune check"); err != nil {
		return GemmTuning{}, fmt.Errorf("gpu: %w", err)
	}
	if t, done := b.tunings[k]; done {
		return t, nil
	}
	res := GemmTuning{M: k.m, N: k.n, K: k.k, TransA: transA, TransB: transB, Chosen: "cublasGemmEx"}
	def := func(c Buffer) error {
		return b.gemmEx(transA, transB, k.m, k.n, k.k, 1, A.Buf, k.aType, k.lda, B.Buf, k.bType, k.ldb, 0, c, k.cType, k.ldc)
	}
	if res.DefaultUs, err = b.timeGemm(func() error { return def(Cm.Buf) }, 3); err != nil {
		return res, err
	}
	if _, err := b.ltHandle(); err != nil {
		return res, err
	}
	op, err := newLtOp(k)
	if err != nil {
		return res, err
	}
	keep := false
	defer func() {
		if !keep {
			C.t2m_lt_op_destroy(&op)
		}
	}()
	algos, infos, err := b.ltCandidates(&op, 16)
	if err != nil {
		return res, err
	}
	var plans []*ltPlan
	var us []float64
	for i, a := range algos {
		if !infos[i].exact() {
			continue
		}
		p := &ltPlan{op: op, algo: a}
		t, err := b.timeGemm(func() error { return b.ltMatmul(p, 1, A.Buf, B.Buf, 0, Cm.Buf) }, 3)
		if err != nil { // an algorithm the library offered but cannot run here: not a candidate
			t = 0
		}
		plans, us = append(plans, p), append(us, t)
		res.Candidates++
		if t > 0 && (res.BestUs == 0 || t < res.BestUs) {
			res.BestUs = t
		}
	}
	best := pickGemm(res.DefaultUs, us, minGain)
	if best >= 0 { // again, each after the other, before trusting the difference
		p := plans[best]
		again, err := b.timeGemm(func() error { return b.ltMatmul(p, 1, A.Buf, B.Buf, 0, Cm.Buf) }, 5)
		if err != nil {
			return res, err
		}
		base, err := b.timeGemm(func() error { return def(Cm.Buf) }, 5)
		if err != nil {
			return res, err
		}
		if pickGemm(base, []float64{again}, minGain) < 0 {
			best = -1
		}
	}
	if best >= 0 {
		p := plans[best]
		if err := def(Cm.Buf); err != nil {
			return res, err
		}
		if err := b.ltMatmul(p, 1, A.Buf, B.Buf, 0, check.Buf); err != nil {
			return res, err
		}
		n := (int64(Cm.Rows-1)*int64(Cm.ld()) + int64(Cm.Cols)) * Cm.DType.Size()
		same, err := sameBytes(b.d, Cm.Buf, check.Buf, n)
		if err != nil {
			return res, err
		}
		idx := 0
		for i := range infos {
			if infos[i].exact() {
				if idx == best {
					res.Chosen = infos[i].String()
				}
				idx++
			}
		}
		if !same {
			res.Chosen = "cublasGemmEx (" + res.Chosen + " differs in its bits)"
		} else {
			res.Switched, keep = true, true
			if b.tuned == nil {
				b.tuned = map[gemmKey]*ltPlan{}
			}
			b.tuned[k] = p
		}
	}
	if b.tunings == nil {
		b.tunings = map[gemmKey]GemmTuning{}
	}
	b.tunings[k] = res
	return res, nil
}

// timeGemm runs f once to warm up, then reps times between two events: µs per run.
func (b *BLAS) timeGemm(f func() error, reps int) (float64, error) {
	if err := f(); err != nil {
		return 0, err
	}
	start, err := b.d.Record()
	if err != nil {
		return 0, err
	}
	for i := 0; i < reps; i++ {
		if err := f(); err != nil {
			start.destroy()
			return 0, err
		}
	}
	end, err := b.d.Record()
	if err != nil {
		return 0, err
	}
	ms, err := start.Millis(end)
	return ms * 1000 / float64(reps), err
}

// sameBytes compares the first n bytes of x and y, downloaded a piece at a time.
func sameBytes(d *Device, x, y Buffer, n int64) (bool, error) {
	const piece = 8 << 20
	bx, by := make([]byte, min(piece, n)), make([]byte, min(piece, n))
	for off := int64(0); off < n; off += piece {
		m := min(piece, n-off)
		if err := Download(d, bx[:m], x.Slice(off, m)); err != nil {
			return false, err
		}
		if err := Download(d, by[:m], y.Slice(off, m)); err != nil {
			return false, err
		}
		if !bytes.Equal(bx[:m], by[:m]) {
			return false, nil
		}
	}
	return true, nil
}
