//go:build t2mcuda

package ops

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
)

// The head rows' gather and its backward (model.GatherRowsOp, model.ScatterRowsOp): the training machine
// keeps only the rows the loss reads after the last layer's attention (model.HeadRows' layout).

// GatherRows launches embedding_fwd_bf16 with x as the table (CPU twin: model.GatherRows):
// y[p, :] = x[idx[p], :] for p < rowsOut, a zero row where idx[p] is −1 (or outside [0, rowsIn)).
// x [rowsIn, C] bf16, idx [rowsOut] int32, y [rowsOut, C] bf16, C % 8 == 0.
func GatherRows(d *cuda.Device, y, x, idx cuda.Buffer, rowsOut, rowsIn, cols int) error {
	if rowsIn <= 0 {
		return fmt.Errorf("gpu: gather rows: %d source rows, need > 0", rowsIn)
	}
	return EmbeddingForward(d, y, x, idx, cuda.Buffer{}, rowsOut, rowsIn, cols)
}

// ScatterRows zeroes dx and launches scatter_rows_bf16 (CPU twin: model.ScatterRows): dx = 0, then
// dx[idx[p], :] = dy[p, :] for p < rowsIn with 0 ≤ idx[p] < rowsOut (each row of dx named once at most, as
// model.HeadRows' index names them; −1 names none). dy [rowsIn, C] bf16, idx [rowsIn] int32, dx [rowsOut, C]
// bf16, C % 8 == 0; rowsIn may be 0 (dx is then zero).
func ScatterRows(d *cuda.Device, dx, dy, idx cuda.Buffer, rowsIn, rowsOut, cols int) error {
	if rowsIn < 0 || rowsOut <= 0 || cols <= 0 || cols%8 != 0 {
		return fmt.Errorf("gpu: scatter rows: %d rows into %d of %d columns: need rows ≥ 0, > 0 and columns a "+
			"positive multiple of 8", rowsIn, rowsOut, cols)
	}
	c := int64(cols) * 2
	if err := kernArgs("scatter rows", "dx", dx, int64(rowsOut)*c, "dy", dy, int64(rowsIn)*c, "idx", idx,
		int64(rowsIn)*4); err != nil {
		return err
	}
	if err := d.Memset(dx.Slice(0, int64(rowsOut)*c), 0); err != nil {
		return err
	}
	if rowsIn == 0 {
		return nil
	}
	k, err := d.Kernel("scatter_rows", "scatter_rows_bf16")
	if err != nil {
		return err
	}
	return d.Launch(k, D1(rowsIn), D1(128), 0, dx, dy, idx, rowsOut, cols)
}
