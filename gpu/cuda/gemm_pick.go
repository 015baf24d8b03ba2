package cuda

// pickGemm is Tune's choice among timed algorithms: the index of the fastest candidate (µs per product)
// when it takes at most (1 − minGain) of the default's time, else −1 (keep cuBLAS's default). The margin
// keeps a choice that timing noise or the product's neighbours in a real step could undo: a pick that was
// 2–6% faster alone ran 2.7% slower inside training steps once (scripts/bench/NOTES.md, sixteenth session).
func pickGemm(defaultUs float64, candUs []float64, minGain float64) int {
	best := -1
	for i, us := range candUs {
		if us > 0 && (best < 0 || us < candUs[best]) {
			best = i
		}
	}
	if best < 0 || candUs[best] > (1-minGain)*defaultUs {
		return -1
	}
	return best
}
