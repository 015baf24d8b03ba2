package cuda

import "testing"

func TestPickGemm(t *testing.T) {
	for _, c := range []struct {
		name  string
		def   float64
		cands []float64
		min   float64
		want  int
	}{
		{"none offered", 100, nil, 0.04, -1},
		{"fastest clears the margin", 100, []float64{99, 90, 95}, 0.04, 1},
		{"fastest within the margin", 100, []float64{97, 98}, 0.04, -1},
		{"exactly at the margin", 100, []float64{96}, 0.04, 0},
		{"failed runs (0) are skipped", 100, []float64{0, 80}, 0.04, 1},
		{"all slower", 100, []float64{120, 101}, 0, -1},
	} {
		if got := pickGemm(c.def, c.cands, c.min); got != c.want {
			t.Errorf("%s: pickGemm(%v, %v, %v) = %d, want %d", c.name, c.def, c.cands, c.min, got, c.want)
		}
	}
}
