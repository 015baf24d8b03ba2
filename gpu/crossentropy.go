//go:build t2mcuda

package gpu

import "fmt"

// CEDims are the sizes of the fused lm_head + cross-entropy (the GPU side of model.CEShape).
type CEDims struct {
	B, T          int   // rows are b·T + t
	Hidden, Vocab int   // H, V
	IgnoreIndex   int32 // −100
	Chunk         int   // rows per chunk: the fp32 logits and their gradient exist for Chunk rows at a time
	// Runs, when not nil, are the rows that have a target (CETargetRuns of the batch's labels): only their
	// logits are computed; every other row gets zero loss and zero dh. Nil means all rows.
	Runs []RowRun
}

// RowRun is the contiguous range of rows [Start, End).
type RowRun struct{ Start, End int }

// CETargetRuns returns the contiguous runs of rows whose target labels[n+1] (within the sequence; the last
// position has none) is not ignoreIndex. With completion-only labels that is one run per sequence, about
// 30% of the rows in t2m's training data, so the lm_head GEMMs shrink by that factor.
// labels [B·T] is the host copy of the batch's unshifted labels.
func CETargetRuns(labels []int32, B, T int, ignoreIndex int32) []RowRun {
	var runs []RowRun
	for n := range B * T {
		if n%T == T-1 || labels[n+1] == ignoreIndex {
			continue
		}
		if k := len(runs) - 1; k >= 0 && runs[k].End == n {
			runs[k].End = n + 1
		} else {
			runs = append(runs, RowRun{n, n + 1})
		}
	}
	return runs
}

func (c CEDims) rows() int { return c.B * c.T }

func (c CEDims) chunk() int { return max(1, min(c.Chunk, c.rows())) }

// LMHeadCrossEntropyScratchBytes is the scratch LMHeadCrossEntropy needs: fp32 logits [Chunk, V], bf16
// dlogits [Chunk, V] and per-row losses [B·T] fp32, each 256-byte aligned.
func LMHeadCrossEntropyScratchBytes(c CEDims) int64 {
	ch, v := int64(c.chunk()), int64(c.Vocab)
	return alignUp(ch*v*4) + alignUp(ch*v*2) + alignUp(int64(c.rows())*4)
}

// LMHeadCrossEntropy is the lm_head GEMM fused with the masked causal-LM cross-entropy, forward and backward
// in one pass over chunks of rows (CPU twins: model.LMHeadCrossEntropyForward and
// model.LMHeadCrossEntropyBackward). For each chunk: logits = h·Wᵀ (cuBLAS, fp32 out) into scratch, then
// crossentropy_fwd_bwd_f32 writes the per-row loss and dlogits = dloss/numItems·(softmax − onehot) in bf16,
// then dh = dlogits·W (cuBLAS). Finally ce_loss_sum_f32 writes loss[0] = Σ rows' loss / numItems.
// h [B·T, H] bf16; w [V, H] bf16 (lm_head weight); labels [B·T] int32, unshifted (row n predicts labels[n+1],
// the last position of a sequence predicts nothing); loss [1] fp32; dh [B·T, H] bf16; bad [1] int32 that
// holds 0 before the call, or a zero Buffer (a target outside the vocabulary stores 1 + its row there);
// scratch of LMHeadCrossEntropyScratchBytes(c).
func LMHeadCrossEntropy(d *Device, loss, dh, h, w, labels, bad, scratch Buffer, c CEDims, numItems,
	dloss float32) error {
	if c.B <= 0 || c.T <= 0 || c.Hidden <= 0 || c.Vocab <= 0 || numItems <= 0 {
		return fmt.Errorf("gpu: lm_head cross-entropy: sizes %+v and numItems %g must be positive", c, numItems)
	}
	rows, hid, voc := c.rows(), int64(c.Hidden), int64(c.Vocab)
	var bb int64
	if bad.Ptr != 0 {
		bb = 4
	}
	if err := kernArgs("lm_head cross-entropy", "loss", loss, int64(4), "dh", dh, int64(rows)*hid*2, "h", h,
		int64(rows)*hid*2, "w", w, voc*hid*2, "labels", labels, int64(rows)*4, "bad", bad, bb, "scratch",
		scratch, LMHeadCrossEntropyScratchBytes(c)); err != nil {
		return err
	}
	blas, err := d.BLAS()
	if err != nil {
		return err
	}
	ce, err := d.Kernel("crossentropy", "crossentropy_fwd_bwd_f32")
	if err != nil {
		return err
	}
	sum, err := d.Kernel("crossentropy", "ce_loss_sum_f32")
	if err != nil {
		return err
	}
	ch := c.chunk()
	logits := scratch.Slice(0, int64(ch)*voc*4)                                 // [Chunk, V] fp32
	dlogits := scratch.Slice(alignUp(int64(ch)*voc*4), int64(ch)*voc*2)         // [Chunk, V] bf16
	rowLoss := scratch.Slice(alignUp(int64(ch)*voc*4)+alignUp(int64(ch)*voc*2), // [B·T] fp32
		int64(rows)*4)
	W := M(w, c.Vocab, c.Hidden, BF16T)
	runs := c.Runs
	if runs == nil {
		runs = []RowRun{{0, rows}}
	} else {
		// Rows outside the runs have no target: zero loss, zero gradient.
		if err := d.Memset(dh.Slice(0, int64(rows)*hid*2), 0); err != nil {
			return err
		}
		if err := d.Memset(rowLoss, 0); err != nil {
			return err
		}
	}
	for _, run := range runs {
		if run.Start < 0 || run.End > rows || run.Start >= run.End {
			return fmt.Errorf("gpu: lm_head cross-entropy: row run [%d, %d) outside [0, %d)", run.Start, run.End, rows)
		}
		if err := ceRun(d, blas, ce, run, ch, hid, c, W, h, dh, logits, dlogits, rowLoss, labels, bad,
			dloss/numItems); err != nil {
			return err
		}
	}
	return d.Launch(sum, D1(1), D1(512), 0, loss, rowLoss, rows, 1/numItems)
}

// ceRun is LMHeadCrossEntropy over the rows of one run, ch rows at a time.
func ceRun(d *Device, blas *BLAS, ce *Kernel, run RowRun, ch int, hid int64, c CEDims, W Mat, h, dh, logits,
	dlogits, rowLoss, labels, bad Buffer, gradScale float32) error {
	for r0 := run.Start; r0 < run.End; r0 += ch {
		cr := min(ch, run.End-r0)
		hc := M(h.Slice(int64(r0)*hid*2, int64(cr)*hid*2), cr, c.Hidden, BF16T)   // [cr, H]
		dhc := M(dh.Slice(int64(r0)*hid*2, int64(cr)*hid*2), cr, c.Hidden, BF16T) // [cr, H]
		if err := blas.Linear(hc, W, 0, M(logits, cr, c.Vocab, F32T)); err != nil {
			return fmt.Errorf("gpu: lm_head cross-entropy rows %d..%d: logits: %w", r0, r0+cr, err)
		}
		if err := d.Launch(ce, D1(cr), D1(512), 0, rowLoss.Slice(int64(r0)*4, int64(cr)*4), dlogits, logits,
			labels, bad, r0, c.T, c.Vocab, int64(c.IgnoreIndex), gradScale); err != nil {
			return err
		}
		if err := blas.LinearGradInput(M(dlogits, cr, c.Vocab, BF16T), W, 1, 0, dhc); err != nil {
			return fmt.Errorf("gpu: lm_head cross-entropy rows %d..%d: dh: %w", r0, r0+cr, err)
		}
	}
	return nil
}

// LMHeadCrossEntropyCheck reads the bad flag of LMHeadCrossEntropy (a host round trip: once per step at most)
// and returns an error naming the first row whose target label was outside the vocabulary.
func LMHeadCrossEntropyCheck(d *Device, bad Buffer) error {
	var v [1]int32
	if err := Download(d, v[:], bad); err != nil {
		return fmt.Errorf("gpu: lm_head cross-entropy check: %w", err)
	}
	if v[0] != 0 {
		return fmt.Errorf("gpu: lm_head cross-entropy: the target label of row %d (labels[%d]) is outside the "+
			"vocabulary and is not the ignore index", v[0]-1, v[0])
	}
	return nil
}
