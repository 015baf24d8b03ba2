package model

import (
	"fmt"
	"os"
)

// This file holds the head rows' layout and the CPU math of its two ops (GatherRowsOp, ScatterRowsOp):
// in training (ModeLossHeadRows) the last decoder layer's o projection, MLP and the final norm run only on
// the rows whose next label the completion-only loss reads.

// HeadRowsEnv is the environment variable that turns head rows off for training: T2M_HEAD_ROWS=0 makes
// TrainingLossMode ModeLoss.
const HeadRowsEnv = "T2M_HEAD_ROWS"

// TrainingLossMode is the mode the training backends (CPU and GPU alike, so that their dropout masks agree)
// build their loss graphs in: ModeLossHeadRows, or ModeLoss when T2M_HEAD_ROWS=0. Losses and gradients are
// the same in both but for LoRA dropout's masks in the last layer's MLP and o projection, which are drawn
// over the gathered rows.
func TrainingLossMode() Mode {
	if os.Getenv(HeadRowsEnv) == "0" {
		return ModeLoss
	}
	return ModeLossHeadRows
}

// HeadRows lays out the rows the completion-only loss reads, for a batch of labels [batch, seq] (HF's,
// unshifted: row n = b·T + t predicts labels[n+1] when t+1 < T, and −100 is ignored). Those target rows,
// numbered j = 0..M−1 in row-major order, go to the gathered rows p = j + j/(T−1) of a [batch·seq] layout,
// so that no target lands on the last row of a [T] block and each still predicts the next row's label
// inside its block: index[p] = n (the source row), headLabels[p+1] = labels[n+1]; every other index entry
// is −1 (a zero row) and every other headLabels entry −100. The fused lm_head + cross-entropy over the
// gathered hidden states [batch·seq, H] with headLabels [batch, seq] then sums exactly the per-row losses
// it sums over the original rows with labels. rows (0 when M = 0, else the last target's p + 2 ≤ batch·seq)
// is the number of leading gathered rows that hold targets or their labels; the rest are zero rows without
// a label, so a loss over just those rows, in one block of rows, is the same sum (no block's last row
// predicts a label: headLabels at a block's start is −100).
//
// Example, batch 2, seq 4 (T−1 = 3 targets per block), −100 written as _:
//
//	labels     [ _ _ 5 6 | _ 7 8 _ ]  targets: row 1 (→5), row 2 (→6), row 4 (→7), row 5 (→8)
//	index      [ 1 2 4 _ | 5 _ _ _ ]  (_ = −1)
//	headLabels [ _ 5 6 7 | _ 8 _ _ ]  rows = 6
//
// A sequence's last row predicts nothing (no t+1), so with seq = 1 there are no targets. labels must hold
// batch·seq values.
func HeadRows(labels []int32, batch, seq int) (index, headLabels []int32, rows int, err error) {
	if batch <= 0 || seq <= 0 {
		return nil, nil, 0, fmt.Errorf("head rows: batch %d and length %d must be > 0", batch, seq)
	}
	n := batch * seq
	if len(labels) != n {
		return nil, nil, 0, fmt.Errorf("head rows: %d labels, want %d×%d", len(labels), batch, seq)
	}
	index, headLabels = make([]int32, n), make([]int32, n) // [B, T] each
	for k := range index {
		index[k], headLabels[k] = -1, -100
	}
	if seq < 2 {
		return index, headLabels, 0, nil
	}
	j := 0 // targets so far
	for row := range n {
		if row%seq == seq-1 || labels[row+1] == -100 {
			continue
		}
		p := j + j/(seq-1) // block j/(T−1), position j mod (T−1) < T−1
		index[p], headLabels[p+1] = int32(row), labels[row+1]
		j++
	}
	if j == 0 {
		return index, headLabels, 0, nil
	}
	last := j - 1
	return index, headLabels, last + last/(seq-1) + 2, nil
}

// GatherRows writes out[p, :] = x[index[p], :], or zeros where index[p] = −1. x [rows, cols], index [P],
// out [P, cols]. An index outside [−1, rows) is an error (naming its position).
func GatherRows(out, x []float32, index []int32, rows, cols int) error {
	if len(x) < rows*cols || len(out) < len(index)*cols {
		return fmt.Errorf("gather rows: x has %d values and out %d, want [%d, %d] and [%d, %d]", len(x), len(out),
			rows, cols, len(index), cols)
	}
	if err := checkRowIndex(index, rows, false); err != nil {
		return err
	}
	for p, src := range index {
		dst := out[p*cols : (p+1)*cols]
		if src < 0 {
			clear(dst)
			continue
		}
		copy(dst, x[int(src)*cols:(int(src)+1)*cols])
	}
	return nil
}

// ScatterRows is GatherRows' adjoint: dx = 0, then dx[index[p], :] = dy[p, :] for every index[p] ≥ 0.
// dy [P, cols], index [P], dx [rows, cols]. Each row of dx may be named once at most (so the adjoint is a copy,
// not a sum); an index outside [−1, rows) or named twice is an error.
func ScatterRows(dx, dy []float32, index []int32, rows, cols int) error {
	if len(dx) < rows*cols || len(dy) < len(index)*cols {
		return fmt.Errorf("scatter rows: dx has %d values and dy %d, want [%d, %d] and [%d, %d]", len(dx), len(dy),
			rows, cols, len(index), cols)
	}
	if err := checkRowIndex(index, rows, true); err != nil {
		return err
	}
	clear(dx[:rows*cols])
	for p, dst := range index {
		if dst >= 0 {
			copy(dx[int(dst)*cols:(int(dst)+1)*cols], dy[p*cols:(p+1)*cols])
		}
	}
	return nil
}

// checkRowIndex reports the first index outside [−1, rows) and, with unique, the first row named twice.
func checkRowIndex(index []int32, rows int, unique bool) error {
	var seen []bool
	if unique {
		seen = make([]bool, rows)
	}
	for p, r := range index {
		if r < -1 || int(r) >= rows {
			return fmt.Errorf("row index %d at position %d is outside [−1, %d)", r, p, rows)
		}
		if unique && r >= 0 {
			if seen[r] {
				return fmt.Errorf("row index %d at position %d names a row a second time", r, p)
			}
			seen[r] = true
		}
	}
	return nil
}
