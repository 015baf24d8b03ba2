//go:build t2mcuda

package ops

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
)

// CEDims are the sizes of the fused lm_head + cross-entropy (the GPU side of model.CEShape).
type CEDims struct {
	B, T          int   // rows are b·T + t
	Hidden, Vocab int   // H, V
	IgnoreIndex   int32 // −100
	Chunk         int   // rows per chunk: the fp32 logits and their gradient exist for Chunk rows at a time
	// Targets, when positive, is the number of rows that have a target (model.CountCompletionTokens of the
	// batch's labels, known on the host): those rows are gathered first and only their logits are computed,
	// about 30% of the rows in t2m's training data. 0 computes logits for every row.
	Targets int
}

func (c CEDims) rows() int { return c.B * c.T }

// work is the number of rows whose logits are computed.
func (c CEDims) work() int {
	if c.Targets > 0 {
		return c.Targets
	}
	return c.rows()
}

func (c CEDims) chunk() int { return max(1, min(c.Chunk, c.work())) }

// LMHeadCrossEntropyScratchBytes is the scratch LMHeadCrossEntropy needs: fp32 logits [Chunk, V], bf16
// dlogits [Chunk, V], per-row losses [B·T] fp32 and, with Targets, the row list [B·T] int32 and the gathered
// h and dh [Targets, H] bf16; each 256-byte aligned.
func LMHeadCrossEntropyScratchBytes(c CEDims) int64 {
	ch, v := int64(c.chunk()), int64(c.Vocab)
	n := cuda.AlignUp(ch*v*4) + cuda.AlignUp(ch*v*2) + cuda.AlignUp(int64(c.rows())*4)
	if c.Targets > 0 {
		n += cuda.AlignUp(int64(c.rows())*4) + 2*cuda.AlignUp(int64(c.Targets)*int64(c.Hidden)*2)
	}
	return n
}

// LMHeadCrossEntropy is the lm_head GEMM fused with the masked causal-LM cross-entropy, forward and backward
// in one pass over chunks of rows (CPU twins: model.LMHeadCrossEntropyForward and
// model.LMHeadCrossEntropyBackward). With c.Targets > 0, ce_target_rows lists the rows that have a target and
// their h rows are gathered (embedding_fwd_bf16) into one dense matrix. For each chunk: logits = h·Wᵀ (cuBLAS,
// fp32 out) into scratch, then crossentropy_fwd_bwd_f32 writes the per-row loss and
// dlogits = dloss/numItems·(softmax − onehot) in bf16, then dh = dlogits·W (cuBLAS). With Targets, the
// gathered dh rows are scattered back (ce_scatter_rows) into a zeroed dh. Finally ce_loss_sum_f32 writes
// loss[0] = Σ rows' loss / numItems.
// h [B·T, H] bf16; w [V, H] bf16 (lm_head weight); labels [B·T] int32, unshifted (row n predicts labels[n+1],
// the last position of a sequence predicts nothing); loss [1] fp32; dh [B·T, H] bf16; bad [1] int32 that
// holds 0 before the call, or a zero Buffer (see LMHeadCrossEntropyCheck); scratch of
// LMHeadCrossEntropyScratchBytes(c).
func LMHeadCrossEntropy(d *cuda.Device, loss, dh, h, w, labels, bad, scratch cuda.Buffer, c CEDims, numItems,
	dloss float32) error {
	if c.B <= 0 || c.T <= 0 || c.Hidden <= 0 || c.Vocab <= 0 || numItems <= 0 || c.Targets < 0 ||
		c.Targets > c.rows() || (c.Targets > 0 && c.Hidden%8 != 0) {
		return fmt.Errorf("gpu: lm_head cross-entropy: sizes %+v and numItems %g: need positive sizes, "+
			"0 ≤ Targets ≤ B·T and, with Targets, Hidden a multiple of 8", c, numItems)
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
	ch, work := c.chunk(), c.work()
	off := int64(0)
	take := func(n int64) cuda.Buffer {
		b := scratch.Slice(off, n)
		off += cuda.AlignUp(n)
		return b
	}
	logits := take(int64(ch) * voc * 4)  // [Chunk, V] fp32
	dlogits := take(int64(ch) * voc * 2) // [Chunk, V] bf16
	rowLoss := take(int64(rows) * 4)     // [work] fp32 (first work entries)
	hw, dhw, idx := h, dh, cuda.Buffer{} // [work, H] bf16 each; idx [B·T] int32 (Targets only)
	if c.Targets > 0 {
		idx = take(int64(rows) * 4)
		hw, dhw = take(int64(work)*hid*2), take(int64(work)*hid*2)
		if err := ceGather(d, idx, bad, hw, h, labels, c); err != nil {
			return err
		}
	}
	W := cuda.M(w, c.Vocab, c.Hidden, cuda.BF16T)
	for r0 := 0; r0 < work; r0 += ch {
		cr := min(ch, work-r0)
		hc := cuda.M(hw.Slice(int64(r0)*hid*2, int64(cr)*hid*2), cr, c.Hidden, cuda.BF16T)   // [cr, H]
		dhc := cuda.M(dhw.Slice(int64(r0)*hid*2, int64(cr)*hid*2), cr, c.Hidden, cuda.BF16T) // [cr, H]
		if err := blas.Linear(hc, W, 0, cuda.M(logits, cr, c.Vocab, cuda.F32T)); err != nil {
			return fmt.Errorf("gpu: lm_head cross-entropy rows %d..%d: logits: %w", r0, r0+cr, err)
		}
		if err := d.Launch(ce, D1(cr), D1(512), 0, rowLoss.Slice(int64(r0)*4, int64(cr)*4), dlogits, logits,
			labels, idx, bad, r0, c.T, c.Vocab, int64(c.IgnoreIndex), dloss/numItems); err != nil {
			return err
		}
		if err := blas.LinearGradInput(cuda.M(dlogits, cr, c.Vocab, cuda.BF16T), W, 1, 0, dhc); err != nil {
			return fmt.Errorf("gpu: lm_head cross-entropy rows %d..%d: dh: %w", r0, r0+cr, err)
		}
	}
	if c.Targets > 0 {
		scatter, err := d.Kernel("crossentropy", "ce_scatter_rows")
		if err != nil {
			return err
		}
		if err := d.Memset(dh.Slice(0, int64(rows)*hid*2), 0); err != nil {
			return err
		}
		if err := d.Launch(scatter, D1(work), D1(128), 0, dh, dhw, idx, c.Hidden); err != nil {
			return err
		}
	}
	return d.Launch(sum, D1(1), D1(512), 0, loss, rowLoss, work, 1/numItems)
}

// ceGather lists the rows with a target (ce_target_rows, checked against c.Targets) and gathers their h rows.
// idx [B·T] int32, hw [Targets, H] bf16.
func ceGather(d *cuda.Device, idx, bad, hw, h, labels cuda.Buffer, c CEDims) error {
	rows, err := d.Kernel("crossentropy", "ce_target_rows")
	if err != nil {
		return err
	}
	if err := d.Launch(rows, D1(1), D1(1024), 0, idx, bad, labels, c.rows(), c.T, int64(c.IgnoreIndex),
		c.Targets); err != nil {
		return err
	}
	gather, err := d.Kernel("embedding", "embedding_fwd_bf16")
	if err != nil {
		return err
	}
	return d.Launch(gather, D1(c.Targets), D1(128), 0, hw, h, idx, cuda.Buffer{}, c.rows(), c.Hidden)
}

// LMHeadCrossEntropyCheck reads the bad flag of LMHeadCrossEntropy (a host round trip: once per step at most)
// and returns an error naming the first row whose target label was outside the vocabulary, or saying that
// c.Targets did not match the labels.
func LMHeadCrossEntropyCheck(d *cuda.Device, bad cuda.Buffer) error {
	var v [1]int32
	if err := cuda.Download(d, v[:], bad); err != nil {
		return fmt.Errorf("gpu: lm_head cross-entropy check: %w", err)
	}
	switch {
	case v[0] == -1:
		return fmt.Errorf("gpu: lm_head cross-entropy: CEDims.Targets differs from the number of rows with a " +
			"target in the labels (use model.CountCompletionTokens of the same labels)")
	case v[0] != 0:
		return fmt.Errorf("gpu: lm_head cross-entropy: the target label of row %d (labels[%d]) is outside the "+
			"vocabulary and is not the ignore index", v[0]-1, v[0])
	}
	return nil
}
