//go:build t2mcuda

package ops

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
)

// EmbeddingForward launches embedding_fwd_bf16 (CPU twin: model.EmbeddingForward): y[n, :] = table[ids[n], :].
// table [vocab, hidden] bf16, ids [rows] int32, y [rows, hidden] bf16, hidden % 8 == 0. bad is an int32 [1]
// that must hold 0 before the launch (or a zero Buffer): an id outside [0, vocab) writes a zero row and
// stores 1 + its row there; call EmbeddingCheck after the step to turn that into an error.
func EmbeddingForward(d *cuda.Device, y, table, ids, bad cuda.Buffer, rows, vocab, hidden int) error {
	if rows <= 0 || hidden%8 != 0 || vocab <= 0 {
		return fmt.Errorf("gpu: embedding: rows %d, vocab %d, hidden %d: need positive sizes, hidden a multiple of 8",
			rows, vocab, hidden)
	}
	var bb int64
	if bad.Ptr != 0 {
		bb = 4
	}
	if err := kernArgs("embedding", "y", y, int64(rows)*int64(hidden)*2, "table", table,
		int64(vocab)*int64(hidden)*2, "ids", ids, int64(rows)*4, "bad", bad, bb); err != nil {
		return err
	}
	k, err := d.Kernel("embedding", "embedding_fwd_bf16")
	if err != nil {
		return err
	}
	return d.Launch(k, D1(rows), D1(128), 0, y, table, ids, bad, vocab, hidden)
}

// EmbeddingCheck reads the bad flag of EmbeddingForward (a host round trip: call it once per step at most)
// and returns an error naming the first row whose id was outside the vocabulary.
func EmbeddingCheck(d *cuda.Device, bad cuda.Buffer) error {
	var v [1]int32
	if err := cuda.Download(d, v[:], bad); err != nil {
		return fmt.Errorf("gpu: embedding check: %w", err)
	}
	if v[0] != 0 {
		return fmt.Errorf("gpu: embedding: the token id at row %d is outside the vocabulary", v[0]-1)
	}
	return nil
}
