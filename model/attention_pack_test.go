package model

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// Sequences packed into one row with segment ids in the mask attend exactly as they do in rows of their own
// (HF's 0/1 mask, right padding): forward outputs and every gradient are bit for bit the same, because each
// query sums the same keys in the same order.
func TestAttentionPackedSegments(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	lens := []int{5, 7, 4}
	const heads, kvHeads, d, pad = 4, 2, 8, 7
	total := 0
	for _, n := range lens {
		total += n
	}
	packed := NewAttnShape(1, total, heads, kvHeads, d)
	apart := NewAttnShape(len(lens), pad, heads, kvHeads, d)
	randv := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	// Token t of sequence s: packed row position off[s] + t, apart row s·pad + t.
	q, k, v, dout := randv(total*packed.QWidth), randv(total*packed.KVWidth), randv(total*packed.KVWidth), randv(total*packed.QWidth)
	pmask := make([]int32, total)
	aq, ak, av, ad := make([]float32, len(lens)*pad*apart.QWidth), make([]float32, len(lens)*pad*apart.KVWidth),
		make([]float32, len(lens)*pad*apart.KVWidth), make([]float32, len(lens)*pad*apart.QWidth)
	amask := make([]int32, len(lens)*pad)
	type at struct{ p, a int }
	var pos []at
	off := 0
	for s, n := range lens {
		for tk := range n {
			p, a := off+tk, s*pad+tk
			pmask[p], amask[a] = int32(s+1), 1
			copy(aq[a*apart.QWidth:][:apart.QWidth], q[p*packed.QWidth:][:packed.QWidth])
			copy(ad[a*apart.QWidth:][:apart.QWidth], dout[p*packed.QWidth:][:packed.QWidth])
			copy(ak[a*apart.KVWidth:][:apart.KVWidth], k[p*packed.KVWidth:][:packed.KVWidth])
			copy(av[a*apart.KVWidth:][:apart.KVWidth], v[p*packed.KVWidth:][:packed.KVWidth])
			pos = append(pos, at{p, a})
		}
		off += n
	}
	pout, aout := make([]float32, len(q)), make([]float32, len(aq))
	AttentionForward(pout, q, k, v, pmask, packed)
	AttentionForward(aout, aq, ak, av, amask, apart)
	pdq, pdk, pdv := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
	adq, adk, adv := make([]float32, len(aq)), make([]float32, len(ak)), make([]float32, len(av))
	AttentionBackward(pdq, pdk, pdv, q, k, v, pmask, dout, packed)
	AttentionBackward(adq, adk, adv, aq, ak, av, amask, ad, apart)
	for _, x := range pos {
		for _, c := range []struct {
			name   string
			p, a   []float32
			stride int
		}{{"out", pout, aout, packed.QWidth}, {"dq", pdq, adq, packed.QWidth}, {"dk", pdk, adk, packed.KVWidth},
			{"dv", pdv, adv, packed.KVWidth}} {
			if got, want := c.p[x.p*c.stride:][:c.stride], c.a[x.a*c.stride:][:c.stride]; !slices.Equal(got, want) {
				t.Fatalf("%s of packed position %d differs from its own row's (position %d)", c.name, x.p, x.a)
			}
		}
	}
}
