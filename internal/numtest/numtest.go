// Package numtest holds the error metrics that t2m's tests use to compare computed values with a
// reference: a GPU kernel with its CPU twin, the Go model with HF transformers' outputs, a cached decode
// with the full graph. Each test states its tolerance next to the call; the metrics are here once so that
// "relative error 1e-4" means the same thing in every package.
//
// All metrics accumulate in float64 and take float32 or float64 slices (got and want may differ). They
// never hide a broken result: a NaN anywhere, or an infinity in one slice that the other does not hold at
// the same index, makes the metric +Inf, which fails every `e <= tol` and `e > tol` check alike (a NaN
// metric would pass `e > tol`). Equal infinities count as equal values (error 0) and are left out of the
// reference's scale. got and want must have the same length; a mismatch is a bug in the test and panics.
//
// It depends only on the standard library and must not import any t2m package, so that every package's
// tests may use it.
package numtest

import (
	"fmt"
	"math"
)

// Float is the element type of the compared slices.
type Float interface{ ~float32 | ~float64 }

// diff returns |g − w| and whether the pair is comparable: false for a NaN on either side or an infinity
// on one side only. Equal values, equal infinities included, give 0.
func diff(g, w float64) (float64, bool) {
	if g == w {
		return 0, true
	}
	d := math.Abs(g - w)
	if math.IsNaN(d) || math.IsInf(d, 0) {
		return 0, false
	}
	return d, true
}

func checkLen(got, want int) {
	if got != want {
		panic(fmt.Sprintf("numtest: comparing %d values with %d reference values", got, want))
	}
}

// RelL2 is the relative L2 error ‖got − want‖₂ / ‖want‖₂. A zero reference gives 0 when got is zero too
// and +Inf otherwise.
func RelL2[G, W Float](got []G, want []W) float64 {
	checkLen(len(got), len(want))
	var num, den float64
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		d, ok := diff(g, w)
		if !ok {
			return math.Inf(1)
		}
		num += d * d
		if !math.IsInf(w, 0) {
			den += w * w
		}
	}
	if den == 0 {
		if num == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return math.Sqrt(num / den)
}

// MaxAbs is the largest absolute error max_i |got_i − want_i| (0 for empty slices).
func MaxAbs[G, W Float](got []G, want []W) float64 {
	checkLen(len(got), len(want))
	var m float64
	for i := range want {
		d, ok := diff(float64(got[i]), float64(want[i]))
		if !ok {
			return math.Inf(1)
		}
		m = max(m, d)
	}
	return m
}

// MaxAbsRel is the largest absolute error relative to the reference's scale, max_i |got_i − want_i| /
// max_i |want_i|: unlike an element-wise relative error it stays meaningful where the reference crosses
// zero. A zero reference gives MaxAbs.
func MaxAbsRel[G, W Float](got []G, want []W) float64 {
	m := MaxAbs(got, want)
	var scale float64
	for _, w := range want {
		if a := math.Abs(float64(w)); !math.IsInf(a, 0) {
			scale = max(scale, a)
		}
	}
	if scale == 0 || math.IsInf(m, 1) {
		return m
	}
	return m / scale
}

// MaxMixed is the largest mixed absolute/relative error max_i |got_i − want_i| / (1 + |want_i|): absolute
// for small reference values, relative for large ones. MaxMixed ≤ tol is numpy's allclose(got, want,
// rtol=tol, atol=tol).
func MaxMixed[G, W Float](got []G, want []W) float64 {
	checkLen(len(got), len(want))
	var m float64
	for i := range want {
		w := float64(want[i])
		d, ok := diff(float64(got[i]), w)
		if !ok {
			return math.Inf(1)
		}
		if d != 0 {
			m = max(m, d/(1+math.Abs(w)))
		}
	}
	return m
}
