package ops

import "testing"

// TestNF4GEMMSplits checks how nf4_gemm's blocks split the 7B's weights at 64 rows (no device needed): about
// two blocks per multiprocessor, whole absmax words (4 groups of 64 inputs) each, and never more partial sums than the
// work room holds.
func TestNF4GEMMSplits(t *testing.T) {
	const room = 136 << 20 / 3 // a third of the 7B decoder's scratch (decoder.work)
	for _, c := range []struct {
		name               string
		out, in            int
		work               int64
		wantSplits, wantGp int
	}{{"q/o", 3584, 3584, room, 7, 8}, {"k/v", 512, 3584, room, 14, 4}, {"gate/up", 18944, 3584, room, 2, 28},
		{"down", 3584, 18944, room, 10, 32}, {"down, no room", 3584, 18944, 0, 1, 296},
		{"q, room for 3", 3584, 3584, 3 * 64 * 3584 * 4, 3, 20}} {
		splits, gps := nf4GEMMSplits((c.out+127)/128, c.in/64, int64(64*c.out), c.work)
		if splits != c.wantSplits || gps != c.wantGp {
			t.Errorf("%s: %d splits of %d groups, want %d of %d", c.name, splits, gps, c.wantSplits, c.wantGp)
		}
		if gps%4 != 0 || splits*gps < c.in/64 {
			t.Errorf("%s: %d splits of %d groups: not whole absmax words, or not every group", c.name, splits, gps)
		}
		if splits > 1 && int64(splits)*64*int64(c.out)*4 > c.work {
			t.Errorf("%s: %d splits need more than %d bytes", c.name, splits, c.work)
		}
	}
}
