package ops

import "testing"

// TestNF4GEMMSplits checks how nf4_gemm's blocks split the 7B's weights (no device needed): at 3 blocks per
// multiprocessor (nf4_gemm_n48, _n64) and at 2 (_n96), the split with the fewest absmax words in sequence per
// wave, whole absmax words (4 groups of 64 inputs) each, never more partial sums than the work room holds.
func TestNF4GEMMSplits(t *testing.T) {
	const room = 136 << 20 / 3 // a third of the 7B decoder's scratch (decoder.work)
	for _, c := range []struct {
		name               string
		out, in, perSM     int
		work               int64
		wantSplits, wantGp int
	}{
		// 3 per SM, 396 slots: q/o 28 tiles × 14 in one wave of 1 word each; k/v 4 × 14; gate/up 148 × 5 in two
		// waves of 3 words (6, against 7 in one wave of 2 splits); down 28 × 13 in one wave of 6 words.
		{"q/o", 3584, 3584, 3, room, 14, 4}, {"k/v", 512, 3584, 3, room, 14, 4}, {"gate/up", 18944, 3584, 3, room, 5, 12},
		{"down", 3584, 18944, 3, room, 13, 24},
		// 2 per SM, 264 slots: q/o 28 × 7 in one wave of 2 words (14 splits: two waves of 1, a tie); gate/up 148 × 3
		// in two waves of 5 words (10, against 14 with 1 or 2 splits); down 28 × 9 in one wave of 9 words (10
		// splits: 280 blocks, two waves of 8).
		{"q/o", 3584, 3584, 2, room, 7, 8}, {"gate/up", 18944, 3584, 2, room, 3, 20}, {"down", 3584, 18944, 2, room, 9, 36},
		{"down, no room", 3584, 18944, 2, 0, 1, 296}, {"q, room for 3", 3584, 3584, 3, 3 * 64 * 3584 * 4, 3, 20}} {
		splits, gps := nf4GEMMSplits((c.out+127)/128, c.in/64, c.perSM, int64(64*c.out), c.work)
		if splits != c.wantSplits || gps != c.wantGp {
			t.Errorf("%s, %d per SM: %d splits of %d groups, want %d of %d", c.name, c.perSM, splits, gps, c.wantSplits,
				c.wantGp)
		}
		if gps%4 != 0 || splits*gps < c.in/64 || (splits-1)*gps >= c.in/64 {
			t.Errorf("%s: %d splits of %d groups: not whole absmax words, not every group, or an empty split", c.name,
				splits, gps)
		}
		if splits > 1 && int64(splits)*64*int64(c.out)*4 > c.work {
			t.Errorf("%s: %d splits need more than %d bytes", c.name, splits, c.work)
		}
	}
}
