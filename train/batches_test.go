package train

import (
	"fmt"
	"slices"
	"testing"
)

// With a window, each window of the shuffled order holds the same sequences as without one, sorted longest
// first and cut into the same number of micro-batches (a micro-batch never spans two windows), and the
// micro-batches compute fewer padded tokens; every row keeps its own ids.
func TestBatchesSortedWithinWindows(t *testing.T) {
	seqs := randomSeqs(37, 50, 5) // 37 sequences of 6–14 tokens: windows of 8 with a short last one
	const size, window, bucket = 2, 8, 1
	plain := makeBatches(seqs, size, 9, true, 0, bucket, 0)
	sorted := makeBatches(seqs, size, 9, true, window, bucket, 0)
	if len(plain) != len(sorted) {
		t.Fatalf("%d micro-batches sorted, %d unsorted", len(sorted), len(plain))
	}
	rowsOf := func(mbs []microBatch) [][]int32 { // each row's ids without padding, in batch order
		var out [][]int32
		for _, mb := range mbs {
			for r := range mb.rows {
				n := 0
				for _, m := range mb.batch.Mask[r*mb.seq : (r+1)*mb.seq] {
					n += int(m)
				}
				out = append(out, mb.batch.IDs[r*mb.seq:r*mb.seq+n])
			}
		}
		return out
	}
	a, b := rowsOf(plain), rowsOf(sorted)
	key := func(ids []int32) string { return fmt.Sprint(ids) }
	padPlain, padSorted := 0, 0
	for _, mb := range plain {
		padPlain += mb.rows*mb.seq - mb.tokens
	}
	for _, mb := range sorted {
		padSorted += mb.rows*mb.seq - mb.tokens
	}
	for w := 0; w < len(a); w += window {
		end := min(w+window, len(a))
		var want, got []string
		for i := w; i < end; i++ {
			want, got = append(want, key(a[i])), append(got, key(b[i]))
			if i > w && len(b[i]) > len(b[i-1]) {
				t.Errorf("window at row %d: row %d has %d tokens after one of %d", w, i, len(b[i]), len(b[i-1]))
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(want, got) {
			t.Errorf("window at row %d holds other sequences sorted than unsorted", w)
		}
	}
	if padSorted >= padPlain {
		t.Errorf("sorting windows pads %d tokens, unsorted %d", padSorted, padPlain)
	}
}

// batchTokens gives each micro-batch's padded size as makeBatches builds it, for shuffled windows and for
// the plain order, with a short last micro-batch.
func TestBatchTokensMatchBatches(t *testing.T) {
	seqs := randomSeqs(37, 50, 5)
	for _, c := range []struct {
		shuffle        bool
		window, bucket int
	}{{true, 8, 8}, {true, 0, 1}, {false, 0, 4}} {
		mbs := makeBatches(seqs, 3, 11, c.shuffle, c.window, c.bucket, 0)
		got := batchTokens(seqs, 3, 11, c.shuffle, c.window, c.bucket)
		if len(got) != len(mbs) {
			t.Fatalf("%+v: %d sizes for %d micro-batches", c, len(got), len(mbs))
		}
		for i, mb := range mbs {
			if got[i] != mb.rows*mb.seq {
				t.Errorf("%+v: micro-batch %d is %d × %d, batchTokens says %d", c, i, mb.rows, mb.seq, got[i])
			}
		}
	}
}
