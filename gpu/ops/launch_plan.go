package ops

// Launch shapes that need no device (so the CPU tests check them too).

// decodeSMs is the number of multiprocessors the decode kernels' grids aim to fill (an H100 or H200 has 132;
// on a smaller card, decode attention's extra slices cost one more merge term each, and nf4_gemm's extra
// splits one more partial sum).
const decodeSMs = 132

// nf4GEMMSplits chooses how many blocks split a weight's ngr groups of 64 inputs (ngr a multiple of 4) and
// gps, the groups each takes (a multiple of 4: one absmax word): enough that its tiles of 128 outputs make
// about two blocks per multiprocessor, and no more partial sums (splits × elems fp32) than work holds. (Aiming
// for 3 was no faster at 33..96 rows on an H200, nor 4 with 8-warp blocks; filling at most one wave was slower
// in the sixteenth session.)
func nf4GEMMSplits(tiles, ngr int, elems, work int64) (splits, gps int) {
	units := max(1, ngr/4)
	splits = min(max(1, (2*decodeSMs+tiles-1)/tiles), units)
	per := (units + splits - 1) / splits
	for {
		splits = (units + per - 1) / per
		if splits == 1 || int64(splits)*elems*4 <= work {
			return splits, 4 * per
		}
		per++
	}
}
