package train

import (
	"os"
	"slices"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/model"
)

// This file packs sequences into micro-batches of one row each ([1, N]): the sequences follow one another,
// each a segment of its own (the mask holds its number, 1, 2, ...; model.AttentionForward's packed rows),
// with positions that restart at 0, so that each attends and is scored exactly as in a row of its own. A
// micro-batch then computes the tokens it holds, not rows × the longest of them, and the packer can fill
// whole row tiles of the device's matrix products: an update's sequences go to its micro-batches so that
// they take as few tiles of PackTile rows as it finds.

// PackEnv is the environment variable that turns packing off where it is the default (the GPU machine):
// T2M_PACK=0 makes Packing false.
const PackEnv = "T2M_PACK"

// Packing says whether a backend that reserves one shape (ShapeReserver) should train on packed
// micro-batches (Run.Pack): unless T2M_PACK=0.
func Packing() bool { return os.Getenv(PackEnv) != "0" }

// PackTile is the row tile the packer fills: the CUDA machine's micro-batch time steps with every 128 rows
// (its weight products' row tile: an H200 update's micro-batches of 1,696 to 1,792 rows take 103–105 ms,
// of 1,856 to 1,920 rows 114–118 ms).
const PackTile = 128

// packLayout says how a run groups its sequences: rows of their own padded to a bucket (pack 0), or
// packed micro-batches of at most pack tokens.
type packLayout struct {
	size   int // sequences per micro-batch (unpacked; packed: the window holds ⌈n/size⌉ micro-batches)
	window int // sequences per update (size × grad-accum; 0: no windows)
	bucket int // lengths are padded to a multiple of this
	pack   int // tokens per packed micro-batch (0: no packing)
}

// batches makes the micro-batches of seqs in the order of data.Shuffle(seed) (when shuffle is set), each
// window sorted longest first: makeBatches' without packing, else packed micro-batches that hold the same
// sequences per window (groups).
func (l packLayout) batches(seqs []data.Sequence, seed uint64, shuffle bool, pad int32) []microBatch {
	if l.pack <= 0 {
		return makeBatches(seqs, l.size, seed, shuffle, l.window, l.bucket, pad)
	}
	groups := l.groups(seqs, seed, shuffle)
	out := make([]microBatch, len(groups))
	for i, g := range groups {
		out[i] = packBatch(seqs, g, l.bucket, pad)
	}
	return out
}

// tokens gives the size (rows × length) of each micro-batch batches would make, in order.
func (l packLayout) tokens(seqs []data.Sequence, seed uint64, shuffle bool) []int {
	if l.pack <= 0 {
		return batchTokens(seqs, l.size, seed, shuffle, l.window, l.bucket)
	}
	var out []int
	for _, g := range l.groups(seqs, seed, shuffle) {
		out = append(out, roundUp(groupLen(seqs, g), l.bucket))
	}
	return out
}

// groups gives the sequences of each packed micro-batch: per window of batchOrder (or per micro-batch of
// size sequences without windows), as many micro-batches as makeBatches cuts it into, filled by packWindow.
func (l packLayout) groups(seqs []data.Sequence, seed uint64, shuffle bool) [][]int {
	order := batchOrder(seqs, seed, shuffle, l.window)
	span := l.window
	if span <= 0 {
		span = l.size
	}
	var out [][]int
	for w := 0; w < len(order); w += span {
		win := order[w:min(w+span, len(order))]
		lens := make([]int, len(win))
		for i, s := range win {
			lens[i] = len(seqs[s].IDs)
		}
		for _, bin := range packWindow(lens, (len(win)+l.size-1)/l.size, l.size, l.pack) {
			g := make([]int, len(bin))
			for i, j := range bin {
				g[i] = win[j]
			}
			out = append(out, g)
		}
	}
	return out
}

// packWindow spreads items of lengths lens (longest first) over k micro-batches of at most capacity tokens
// each, none empty, so that they take few tiles of PackTile rows: Σ ⌈fill/PackTile⌉. It starts from the
// unpacked grouping (consecutive runs of size items, which fits when size × the longest ≤ capacity) and
// moves or swaps items while that lowers the tiles, or keeps them and gathers the unused rows into fewer
// micro-batches (a larger Σ unused², so that a later move can empty a tile). Each bin lists its items
// (indices into lens) longest first.
func packWindow(lens []int, k, size, capacity int) [][]int {
	bin := make([]int, len(lens)) // item → bin
	fill := make([]int, k)
	count := make([]int, k)
	for i, n := range lens {
		bin[i] = min(i/size, k-1)
		fill[bin[i]] += n
		count[bin[i]]++
	}
	tiles := func(f int) int { return (f + PackTile - 1) / PackTile }
	unused := func(f int) int { u := tiles(f)*PackTile - f; return u * u }
	// gain of changing fills a→fa, b→fb: (fewer tiles, more gathered unused rows).
	better := func(a, b, fa, fb int) bool {
		if fa > capacity || fb > capacity {
			return false
		}
		dt := tiles(fa) + tiles(fb) - tiles(fill[a]) - tiles(fill[b])
		if dt != 0 {
			return dt < 0
		}
		return unused(fa)+unused(fb) > unused(fill[a])+unused(fill[b])
	}
	for improved := true; improved; {
		improved = false
		for i := range lens {
			a := bin[i]
			for b := range k {
				if b == a {
					continue
				}
				if count[a] > 1 && better(a, b, fill[a]-lens[i], fill[b]+lens[i]) { // move i to b
					fill[a], fill[b] = fill[a]-lens[i], fill[b]+lens[i]
					count[a], count[b] = count[a]-1, count[b]+1
					bin[i], a, improved = b, b, true
					continue
				}
				for j := range lens {
					if bin[j] != b || lens[j] == lens[i] {
						continue
					}
					d := lens[i] - lens[j]
					if better(a, b, fill[a]-d, fill[b]+d) { // swap i and j
						fill[a], fill[b] = fill[a]-d, fill[b]+d
						bin[i], bin[j], a, improved = b, a, b, true
						break
					}
				}
			}
		}
	}
	out := make([][]int, k)
	for i := range lens {
		out[bin[i]] = append(out[bin[i]], i)
	}
	for _, g := range out {
		slices.SortStableFunc(g, func(x, y int) int { return lens[y] - lens[x] })
	}
	return out
}

// packBatch lays the sequences g of seqs one after the other into one row [1, N], N their length rounded
// up to bucket: segment s (mask s+1) holds sequence g[s] at positions restarting from 0, its first label
// ignored (in a row of its own no position predicts it; here the previous sequence's last one would), and
// the rounding rows form one more segment of padding (ids pad, labels ignored), so that no query of the row
// is a padding query that would attend to every earlier key.
func packBatch(seqs []data.Sequence, g []int, bucket int, pad int32) microBatch {
	total := groupLen(seqs, g)
	N := roundUp(total, bucket)
	mb := microBatch{rows: 1, seq: N, tokens: total, seqs: len(g)}
	mb.batch.IDs = make([]int32, N)       // [1·N]
	mb.batch.Labels = make([]int32, N)    // [1·N]
	mb.batch.Mask = make([]int32, N)      // [1·N]
	mb.batch.Positions = make([]int32, N) // [1·N]
	p := 0
	for s, i := range g {
		labels := seqs[i].Labels()
		labels[0] = data.IgnoreIndex
		copy(mb.batch.IDs[p:], seqs[i].IDs)
		copy(mb.batch.Labels[p:], labels)
		for t := range seqs[i].IDs {
			mb.batch.Mask[p+t], mb.batch.Positions[p+t] = int32(s+1), int32(t)
		}
		p += len(seqs[i].IDs)
	}
	for t := range N - p {
		mb.batch.IDs[p+t], mb.batch.Labels[p+t] = pad, data.IgnoreIndex
		mb.batch.Mask[p+t], mb.batch.Positions[p+t] = int32(len(g)+1), int32(t)
	}
	return mb
}

// groupLen is the tokens of the sequences g of seqs.
func groupLen(seqs []data.Sequence, g []int) int {
	n := 0
	for _, i := range g {
		n += len(seqs[i].IDs)
	}
	return n
}

// roundUp rounds n up to a multiple of m.
func roundUp(n, m int) int { return (n + m - 1) / m * m }

// PackBatch is seqs packed, in order, into one micro-batch [1, N] as the training loop packs them, N
// their tokens rounded up to bucket (for tests and benchmarks of the backends).
func PackBatch(seqs []data.Sequence, bucket int, pad int32) (b model.Batch, n int) {
	g := make([]int, len(seqs))
	for i := range g {
		g[i] = i
	}
	mb := packBatch(seqs, g, bucket, pad)
	return mb.batch, mb.seq
}

// RowsBatch is seqs as one micro-batch of a row each, [len(seqs), T], T the longest rounded up to bucket
// and right padding, as the loop batches them without packing.
func RowsBatch(seqs []data.Sequence, bucket int, pad int32) (b model.Batch, seq int) {
	mb := makeBatches(seqs, len(seqs), 0, false, 0, bucket, pad)[0]
	return mb.batch, mb.seq
}
