package ops

// Launch shapes that need no device (so the CPU tests check them too).

// decodeSMs is the number of multiprocessors the decode kernels' grids aim to fill (an H100 or H200 has 132;
// on a smaller card, decode attention's extra slices cost one more merge term each, and nf4_gemm's extra
// splits one more partial sum).
const decodeSMs = 132

// nf4GEMMSplits chooses how many blocks split a weight's ngr groups of 64 inputs (ngr a multiple of 4) and
// gps, the groups each takes (a multiple of 4: one absmax word), for tiles output tiles of a kernel that runs
// perSM blocks per multiprocessor: the split whose blocks, in waves of perSM · decodeSMs, take the fewest
// absmax words in sequence (waves · words per block), in at most two waves unless unsplit, the fewest splits
// on a tie, and no more partial sums (splits × elems fp32) than work holds. On an H200 at the 7B shape that
// gave 33 / 48 / 64 / 96-row steps of 6.24–6.33 / 7.00–7.15 / 7.87–7.88 / 11.05–11.12 ms against 6.48–6.50 /
// 7.26–7.27 / 7.88–7.92 / 11.13–11.15 with splits for two blocks per multiprocessor (scripts/bench/NOTES.md,
// twenty-third session); aiming for 3 or 4 blocks per multiprocessor had been no faster.
func nf4GEMMSplits(tiles, ngr, perSM int, elems, work int64) (splits, gps int) {
	units := max(1, ngr/4) // absmax words
	slots := perSM * decodeSMs
	best, per := -1, units
	splits = 1
	for p := units; p >= 1; p-- { // words per block, splits rising
		s := (units + p - 1) / p
		if (units+s-1)/s != p { // the same splits as a larger p, with some blocks one word longer
			continue
		}
		blocks := tiles * s
		if s > 1 && (blocks > 2*slots || int64(s)*elems*4 > work) {
			break
		}
		if cost := (blocks + slots - 1) / slots * p; best < 0 || cost < best {
			best, splits, per = cost, s, p
		}
	}
	return splits, 4 * per
}
