package train

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/internal/numtest"
)

// packTiles is Σ ⌈fill/PackTile⌉ over bins of items of lengths lens.
func packTiles(lens []int, bins [][]int) int {
	n := 0
	for _, b := range bins {
		f := 0
		for _, i := range b {
			f += lens[i]
		}
		n += (f + PackTile - 1) / PackTile
	}
	return n
}

// Every item lands in exactly one of the k non-empty bins, longest first, each within the capacity, and
// the bins never take more tiles than the unpacked grouping (runs of size items); on windows like the
// published data's (16 sequences of 180–512 tokens, 4 micro-batches of at most 2,048) they take fewer.
func TestPackWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const size, k, capacity = 4, 4, 2048
	packed, rows := 0, 0
	for range 200 {
		lens := make([]int, size*k)
		for i := range lens {
			lens[i] = 180 + rng.IntN(333)
		}
		slices.SortFunc(lens, func(a, b int) int { return b - a })
		bins := packWindow(lens, k, size, capacity)
		if len(bins) != k {
			t.Fatalf("%d bins, want %d", len(bins), k)
		}
		seen := make([]int, len(lens))
		for _, b := range bins {
			f := 0
			for x, i := range b {
				seen[i]++
				f += lens[i]
				if x > 0 && lens[i] > lens[b[x-1]] {
					t.Fatalf("bin %v of %v is not longest first", b, lens)
				}
			}
			if len(b) == 0 || f > capacity {
				t.Fatalf("bin %v of %v: %d tokens (capacity %d)", b, lens, f, capacity)
			}
		}
		for i, n := range seen {
			if n != 1 {
				t.Fatalf("item %d of %v is in %d bins", i, lens, n)
			}
		}
		plain := make([][]int, k)
		for i := range lens {
			plain[i/size] = append(plain[i/size], i)
		}
		p, u := packTiles(lens, bins), packTiles(lens, plain)
		if p > u {
			t.Fatalf("%v: packed into %d tiles, unpacked %d", lens, p, u)
		}
		packed, rows = packed+p, rows+u
	}
	t.Logf("200 windows: %d tiles packed, %d unpacked", packed, rows)
	if packed >= rows {
		t.Errorf("packing saved no tile over 200 windows (%d, unpacked %d)", packed, rows)
	}
	// One swap (60 ↔ 10) turns 3 + 2 tiles into 2 + 2.
	lens := []int{200, 60, 190, 10}
	if bins := packWindow(lens, 2, 2, 400); packTiles(lens, bins) != 4 {
		t.Errorf("%v packed as %v: %d tiles, want 4", lens, bins, packTiles(lens, bins))
	}
}

// A packed micro-batch holds its sequences one after the other, each a segment with positions from 0 and
// its first label ignored, and pads to the bucket with a segment of its own.
func TestPackBatch(t *testing.T) {
	seqs := []data.Sequence{{IDs: []int32{1, 2, 3}, PromptLen: 1}, {IDs: []int32{4, 5}, PromptLen: 0}, {IDs: []int32{6, 7, 8, 9}, PromptLen: 2}}
	mb := packBatch(seqs, []int{2, 0, 1}, 5, 0)
	const ig = data.IgnoreIndex
	want := struct{ ids, labels, mask, pos []int32 }{
		ids:    []int32{6, 7, 8, 9, 1, 2, 3, 4, 5, 0},
		labels: []int32{ig, ig, 8, 9, ig, 2, 3, ig, 5, ig},
		mask:   []int32{1, 1, 1, 1, 2, 2, 2, 3, 3, 4},
		pos:    []int32{0, 1, 2, 3, 0, 1, 2, 0, 1, 0},
	}
	if mb.rows != 1 || mb.seq != 10 || mb.tokens != 9 || mb.seqs != 3 {
		t.Errorf("shape [%d, %d], %d tokens, %d sequences; want [1, 10], 9, 3", mb.rows, mb.seq, mb.tokens, mb.seqs)
	}
	for _, c := range []struct {
		name      string
		got, want []int32
	}{{"ids", mb.batch.IDs, want.ids}, {"labels", mb.batch.Labels, want.labels}, {"mask", mb.batch.Mask, want.mask},
		{"positions", mb.batch.Positions, want.pos}} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s %v, want %v", c.name, c.got, c.want)
		}
	}
}

// Training on packed micro-batches is training on rows of their own: the same sequences per update, so the
// same losses, gradient norms, eval losses and parameters (to float32 summation order), on the CPU backend
// that runs any shape.
func TestPackedTrainingMatchesRows(t *testing.T) {
	fp := parallelFingerprint()
	fp.Dropout = 0 // dropout masks are drawn over the micro-batch's layout
	seqs, evals := randomSeqs(24, smallConfig().VocabSize, 3), randomSeqs(6, smallConfig().VocabSize, 4)
	rowsDir, packDir := t.TempDir(), t.TempDir()
	rows := newTestRun(t, rowsDir, fp, seqs, evals)
	if _, err := rows.Train(); err != nil {
		t.Fatal(err)
	}
	packed := newTestRun(t, packDir, fp, seqs, evals)
	longest := 0
	for _, s := range append(append([]data.Sequence{}, seqs...), evals...) {
		longest = max(longest, len(s.IDs))
	}
	packed.Pack = fp.BatchSize * longest
	if _, err := packed.Train(); err != nil {
		t.Fatal(err)
	}
	want, got := readMetricsT(t, rowsDir), readMetricsT(t, packDir)
	if len(got) != len(want) {
		t.Fatalf("%d metric lines packed, %d in rows", len(got), len(want))
	}
	const tol = 1e-5
	evalsSeen := 0
	for i := range want {
		w, g := want[i], got[i]
		if w.Step != g.Step || (w.Loss == nil) != (g.Loss == nil) || (w.EvalLoss == nil) != (g.EvalLoss == nil) {
			t.Fatalf("line %d: %+v, in rows %+v", i, g, w)
		}
		if w.EvalLoss != nil {
			evalsSeen++
		}
		for _, p := range [][2]*float64{{w.Loss, g.Loss}, {w.GradNorm, g.GradNorm}, {w.EvalLoss, g.EvalLoss}} {
			if p[0] != nil && math.Abs(*p[1]-*p[0]) > tol*math.Abs(*p[0]) {
				t.Errorf("update %d: %v packed, %v in rows", w.Step, *p[1], *p[0])
			}
		}
		for _, mb := range g.MicroBatches {
			if mb.Rows != 1 {
				t.Errorf("update %d: a packed micro-batch of %d rows", g.Step, mb.Rows)
			}
		}
	}
	if evalsSeen == 0 {
		t.Error("no eval loss to compare")
	}
	for i, v := range packed.Params.Values {
		if d := numtest.RelL2(v, rows.Params.Values[i]); d > 1e-4 {
			t.Errorf("parameter %d differs from training in rows by rel L2 %.2g", i, d)
		}
	}
	short := newTestRun(t, t.TempDir(), fp, seqs, evals)
	short.Pack = fp.BatchSize*longest - 1
	if _, err := short.Train(); err == nil {
		t.Error("a pack size below batch size × the longest sequence was accepted")
	}
}
