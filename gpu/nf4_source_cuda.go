//go:build t2mcuda

package gpu

import (
	"math/rand/v2"
	"slices"
)

// nf4Source makes benchmark weights on the device without a host copy: every matrix gets random NF4 codes
// and absmax indices (FillRandomU8), one shared sorted dynamic map in [-1, 1), nested absmax in
// [0.01, 0.02) and offset 0.02 — a valid NF4 matrix of realistic magnitude (the values do not change the
// speed). The training benchmark and the generation benchmark draw their weights from it.
type nf4Source struct {
	d     *Device
	rng   *rand.Rand
	code2 []float32 // [256] the dynamic map every weight shares
	seed  uint64    // the last FillRandom seed used; each fill takes the next
}

func newNF4Source(d *Device) *nf4Source {
	r := &nf4Source{d: d, rng: rand.New(rand.NewPCG(7, 7)), code2: make([]float32, 256), seed: 1}
	for i := range r.code2 {
		r.code2[i] = 2*r.rng.Float32() - 1
	}
	slices.Sort(r.code2)
	return r
}

// nextSeed returns a fresh seed for a device fill.
func (r *nf4Source) nextSeed() uint64 {
	r.seed++
	return r.seed
}

// weight allocates a [rows, cols] NF4 matrix (blocks of 64, nested blocks of 256) in ar and fills it.
func (r *nf4Source) weight(ar *Arena, rows, cols int, name string) (*NF4Weight, error) {
	w, err := AllocNF4(ar, rows, cols, 64, 256, name)
	if err != nil {
		return nil, err
	}
	w.Offset = 0.02
	if err := r.d.FillRandomU8(w.Codes, r.nextSeed()); err != nil {
		return nil, err
	}
	if err := r.d.FillRandomU8(w.Absmax, r.nextSeed()); err != nil {
		return nil, err
	}
	if err := Upload(r.d, w.Code2, r.code2); err != nil {
		return nil, err
	}
	a2 := make([]float32, w.Absmax2.Bytes/4)
	for i := range a2 {
		a2[i] = 0.01 + 0.01*r.rng.Float32()
	}
	return w, Upload(r.d, w.Absmax2, a2)
}
