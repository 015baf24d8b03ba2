//go:build t2mcuda

package gpu

import (
	"fmt"
	"slices"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/ops"
)

// defaultReuseMin is the shortest shared prefix a prefill reuses from a cache rather than computes: below
// it, copying the keys and values and a forward of its own cost more than the tokens it saves.
const defaultReuseMin = 32

// prefixCopy copies positions [0, n) of slot from's keys and values to slot to, in every layer's caches.
func (g *decoder) prefixCopy(from, to int32, n int) error {
	row := int64(g.dims.KVH*g.dims.D) * 2 // one position's key (or value) in bytes
	src, dst := int64(from)*int64(g.dims.Cap)*row, int64(to)*int64(g.dims.Cap)*row
	for l := range g.kc {
		for _, c := range []cuda.Buffer{g.kc[l], g.vc[l]} {
			if err := g.d.Copy(c.Slice(dst, int64(n)*row), c.Slice(src, int64(n)*row)); err != nil {
				return fmt.Errorf("gpu: decoder: copying %d cached positions from sequence %d to %d: %w", n, from, to, err)
			}
		}
	}
	return nil
}

// prefillSuffixes prefills prompts idx whose first plans[i].keep tokens' keys and values are already in
// their slot's cache (copied by prefixCopy, or left there by an earlier prompt of that slot): only the rest
// of each prompt runs through the projections and the MLP, as compact rows, prompts together in forwards
// whose prompts, padded to their longest (T), fit g.rows rows. A row at position p must attend to positions
// 0..p of its slot's cache, the reused prefix included. Attention does that with the prefill's own causal
// flash forward over [B, T] (attendSuffixes), so a row gets what a whole prefill gives it. It writes the
// prompts' next tokens into next and appends idx, in the order choose saw them, to order.
func (g *decoder) prefillSuffixes(idx []int, plans []reusePlan, slotOf []int32, prompts [][]int32, next []int32, order *[]int) error {
	for start := 0; start < len(idx); {
		end, T := start, 0
		for end < len(idx) {
			t := max(T, len(prompts[idx[end]]))
			if end > start && (end-start+1)*t > g.rows {
				break
			}
			end, T = end+1, t
		}
		chunk := idx[start:end]
		B := len(chunk)
		var ids, pos, slots []int32                                               // [rows]: the computed tokens
		last, seqs := make([]int32, B), make([]int32, B)                          // [B]
		kvRow, qRow, oRow := make([]int32, B*T), make([]int32, B*T), []int32(nil) // [B·T], [B·T], [rows]
		for b, i := range chunk {
			p, s := prompts[i], slotOf[i]
			for t := range T {
				kvRow[b*T+t] = s*int32(g.dims.Cap) + int32(min(t, len(p)-1)) // padding: a real key, never seen by a real row
				if t >= plans[i].keep && t < len(p) {
					qRow[b*T+t] = int32(len(ids))
					oRow = append(oRow, int32(b*T+t))
					ids, pos, slots = append(ids, p[t]), append(pos, int32(t)), append(slots, s)
				}
			}
			last[b], seqs[b] = int32(len(ids)-1), s
		}
		what := fmt.Sprintf("gpu: prefill of %d prompts after their cached prefixes (first: prompt %d)", B, chunk[0])
		if err := g.upload(ids, pos, slots, last); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := cuda.Upload(g.d, g.gidx, slices.Concat(kvRow, qRow, oRow)); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		attend := func(l int) error { return g.attendSuffixes(l, B, T, len(ids)) }
		if err := g.forward(len(ids), attend, B); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		got, err := g.choose(seqs)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		for b, i := range chunk {
			next[i] = got[b]
		}
		*order = append(*order, chunk...)
		start = end
	}
	return nil
}

// attendSuffixes is layer l's attention for prefillSuffixes' rows [rows] (g.q, their keys and values already
// appended to the caches): B prompts of up to T tokens, gathers in g.gidx ([B·T] cache rows, [B·T] compact
// row of each (b, t), [rows] b·T + t of each compact row). Row gathers (the embedding lookup, exact copies)
// lay out q, k, v [B·T, ·] as a whole prefill has them — k and v from the caches, q at its rows (rows not
// computed here take compact row 0; their outputs are dropped) — the causal flash forward attends, and the
// computed rows' outputs are gathered back into g.attn [rows, Hq·D].
func (g *decoder) attendSuffixes(l, B, T, rows int) error {
	c, n := g.w.w.Config, B*T
	Q, KV := int64(c.QDim()), int64(c.KVDim())
	qf := g.wide[0].Slice(0, int64(n)*Q*2)
	kf := g.wide[0].Slice(int64(n)*Q*2, int64(n)*KV*2)
	vf := g.wide[0].Slice(int64(n)*(Q+KV)*2, int64(n)*KV*2)
	of := g.wide[1].Slice(0, int64(n)*Q*2)
	kvRow, qRow, oRow := g.gidx.Slice(0, int64(n)*4), g.gidx.Slice(int64(n)*4, int64(n)*4), g.gidx.Slice(int64(n)*8, int64(rows)*4)
	table := g.dims.Slots * g.dims.Cap // the caches as tables of [Slots·Cap] rows
	if err := ops.EmbeddingForward(g.d, kf, g.kc[l], kvRow, cuda.Buffer{}, n, table, int(KV)); err != nil {
		return fmt.Errorf("keys of the cached prefixes: %w", err)
	}
	if err := ops.EmbeddingForward(g.d, vf, g.vc[l], kvRow, cuda.Buffer{}, n, table, int(KV)); err != nil {
		return fmt.Errorf("values of the cached prefixes: %w", err)
	}
	if err := ops.EmbeddingForward(g.d, qf, g.q, qRow, cuda.Buffer{}, n, rows, int(Q)); err != nil {
		return fmt.Errorf("queries after the cached prefixes: %w", err)
	}
	ad := ops.AttnDims{B: B, T: T, H: c.NumHeads, KVH: c.NumKVHeads, D: c.HeadDim, Scale: g.dims.Scale}
	if err := ops.AttentionForward(g.d, of, g.lse, qf, kf, vf, cuda.Buffer{}, ad); err != nil {
		return err
	}
	if err := ops.EmbeddingForward(g.d, g.attn, of, oRow, cuda.Buffer{}, rows, n, int(Q)); err != nil {
		return fmt.Errorf("attention outputs after the cached prefixes: %w", err)
	}
	return nil
}

// noteStep records in g.cached what a step put in the caches: token ids[r] at position pos[r] of sequence
// seqs[r]. A position past what is recorded leaves the record as it is (its prefix stays valid).
func (g *decoder) noteStep(seqs, ids, pos []int32) {
	if g.cached == nil {
		return
	}
	for r, s := range seqs {
		if c := g.cached[s]; int(pos[r]) <= len(c) {
			g.cached[s] = append(c[:pos[r]], ids[r])
		}
	}
}
