package numtest

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }

func TestMetrics(t *testing.T) {
	got := []float32{1, 2, -3.5, 0}
	want := []float64{1, 2.5, -3, 0.25}
	// differences 0, 0.5, 0.5, 0.25; ‖d‖² = 0.5625; ‖want‖² = 1 + 6.25 + 9 + 0.0625 = 16.3125
	cases := []struct {
		name      string
		got, want float64
	}{
		{"RelL2", RelL2(got, want), math.Sqrt(0.5625 / 16.3125)},
		{"MaxAbs", MaxAbs(got, want), 0.5},
		{"MaxAbsRel", MaxAbsRel(got, want), 0.5 / 3},
		{"MaxMixed", MaxMixed(got, want), 0.25 / 1.25}, // beats 0.5/3.5 and 0.5/4: small references weigh more
	}
	for _, c := range cases {
		if !near(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	same := []float32{0.5, -7, float32(math.Inf(-1))}
	for name, e := range map[string]float64{"RelL2": RelL2(same, same), "MaxAbs": MaxAbs(same, same),
		"MaxAbsRel": MaxAbsRel(same, same), "MaxMixed": MaxMixed(same, same)} {
		if e != 0 {
			t.Errorf("%s of equal slices (with an equal -Inf) = %v, want 0", name, e)
		}
	}
}

// TestNonFiniteFails: a NaN or an unmatched infinity must fail a tolerance check, whichever way the test
// writes the comparison.
func TestNonFiniteFails(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	ref := []float32{1, 2, 3}
	for _, bad := range [][2][]float32{
		{{1, nan, 3}, ref},
		{ref, {1, nan, 3}},
		{{1, inf, 3}, ref},
		{ref, {1, 2, inf}},
		{{inf, 2, 3}, {float32(math.Inf(-1)), 2, 3}},
	} {
		for name, f := range map[string]func(g, w []float32) float64{
			"RelL2": RelL2[float32, float32], "MaxAbs": MaxAbs[float32, float32],
			"MaxAbsRel": MaxAbsRel[float32, float32], "MaxMixed": MaxMixed[float32, float32],
		} {
			if e := f(bad[0], bad[1]); !math.IsInf(e, 1) {
				t.Errorf("%s(%v, %v) = %v, want +Inf", name, bad[0], bad[1], e)
			}
		}
	}
}

func TestZeroReference(t *testing.T) {
	zero := []float64{0, 0}
	if e := RelL2([]float64{0, 0}, zero); e != 0 {
		t.Errorf("RelL2(0, 0) = %v, want 0", e)
	}
	if e := RelL2([]float64{0, 1e-30}, zero); !math.IsInf(e, 1) {
		t.Errorf("RelL2(x≠0, 0) = %v, want +Inf", e)
	}
	if e := MaxAbsRel([]float64{0, -0.25}, zero); e != 0.25 {
		t.Errorf("MaxAbsRel against a zero reference = %v, want the absolute error 0.25", e)
	}
}

func TestLengthMismatchPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("RelL2 of 2 values against 3 did not panic")
		}
	}()
	RelL2([]float32{1, 2}, []float32{1, 2, 3})
}
