package model

import "math"

// AttnShape gives the sizes of a causal grouped-query attention call.
type AttnShape struct {
	Batch, Seq      int     // B, T; rows are b·T + t
	Heads, KVHeads  int     // query heads; key/value heads (Heads % KVHeads == 0)
	HeadDim         int     // D
	Scale           float32 // softmax scale, D^−0.5 for Qwen2
	QWidth, KVWidth int     // Heads·D, KVHeads·D (row strides of q/out and k/v)
	GroupSize       int     // Heads / KVHeads: query head h reads KV head h / GroupSize
}

// NewAttnShape fills the derived sizes.
func NewAttnShape(batch, seq, heads, kvHeads, headDim int) AttnShape {
	return AttnShape{Batch: batch, Seq: seq, Heads: heads, KVHeads: kvHeads, HeadDim: headDim,
		Scale:  float32(1 / math.Sqrt(float64(headDim))),
		QWidth: heads * headDim, KVWidth: kvHeads * headDim, GroupSize: heads / kvHeads}
}

// attnVisible says whether key j is visible to query i of row b: j ≤ i (the caller's loop), key j is not
// padding (mask 0), and unless query i is padding, both are in the same segment (equal mask values: one of
// several sequences packed into the row; HF's 0/1 mask is one segment).
func attnVisible(mask []int32, s AttnShape, b, i, j int) bool {
	mj, mi := mask[b*s.Seq+j], mask[b*s.Seq+i]
	return mj != 0 && (mi == 0 || mj == mi)
}

// attnProbs fills p[0..i] with the softmax over the keys j ≤ i visible to query i (attnVisible) of
// scale·q·k_j (float32, max subtracted), zeros elsewhere; it reports false when no key is allowed.
func attnProbs(p, q, k []float32, mask []int32, s AttnShape, b, kvh, i int) bool {
	mx := float32(math.Inf(-1))
	found := false
	for j := 0; j <= i; j++ {
		if !attnVisible(mask, s, b, i, j) {
			p[j] = float32(math.Inf(-1))
			continue
		}
		kj := k[(b*s.Seq+j)*s.KVWidth+kvh*s.HeadDim:][:s.HeadDim]
		var dot float32
		for d, qv := range q {
			dot += qv * kj[d]
		}
		p[j] = dot * s.Scale
		if p[j] > mx {
			mx = p[j]
		}
		found = true
	}
	if !found {
		for j := 0; j <= i; j++ {
			p[j] = 0
		}
		return false
	}
	var sum float64
	for j := 0; j <= i; j++ {
		if math.IsInf(float64(p[j]), -1) {
			p[j] = 0
			continue
		}
		e := float32(math.Exp(float64(p[j] - mx)))
		p[j] = e
		sum += float64(e)
	}
	inv := float32(1 / sum)
	for j := 0; j <= i; j++ {
		p[j] *= inv
	}
	return true
}

// AttentionForward is causal grouped-query attention with a key padding mask (HF eager Qwen2 attention):
// for query row (b,i) and head h, with g = h / GroupSize,
// p_j = softmax_j(scale · q[b,i,h]·k[b,j,g]) over the keys j ≤ i visible to query i (attnVisible) (fp32),
// out[b,i,h] = Σ_j p_j · v[b,j,g]. A row whose keys are all masked (a left-padding query) gets zeros.
// q, out [B·T, Heads·D]; k, v [B·T, KVHeads·D]; mask [B·T]: 0 padding, else the token's segment (HF's 1 for
// every token; 1, 2, ... for sequences packed one after the other into a row, which then attend as if apart).
func AttentionForward(out, q, k, v []float32, mask []int32, s AttnShape) {
	parallelFor(s.Batch*s.Heads, func(lo, hi int) {
		p := make([]float32, s.Seq)
		for bh := lo; bh < hi; bh++ {
			b, h := bh/s.Heads, bh%s.Heads
			g := h / s.GroupSize
			for i := range s.Seq {
				row := b*s.Seq + i
				qi := q[row*s.QWidth+h*s.HeadDim:][:s.HeadDim]
				oi := out[row*s.QWidth+h*s.HeadDim:][:s.HeadDim]
				clear(oi)
				if !attnProbs(p, qi, k, mask, s, b, g, i) {
					continue
				}
				for j := 0; j <= i; j++ {
					if p[j] == 0 {
						continue
					}
					vj := v[(b*s.Seq+j)*s.KVWidth+g*s.HeadDim:][:s.HeadDim]
					for d := range oi {
						oi[d] += p[j] * vj[d]
					}
				}
			}
		}
	})
}

// AttentionBackward computes the gradients of AttentionForward from dout, recomputing p:
// dp_j = dout_i·v_j, ds_j = p_j·(dp_j − Σ_k p_k dp_k),
// dq_i = scale·Σ_j ds_j k_j, dk_j += scale·ds_j q_i, dv_j += p_j dout_i (summed over the query heads of a
// KV group). dq [B·T, Heads·D]; dk, dv [B·T, KVHeads·D]; all three are overwritten.
func AttentionBackward(dq, dk, dv, q, k, v []float32, mask []int32, dout []float32, s AttnShape) {
	clear(dk)
	clear(dv)
	// One worker per (batch, KV head): it owns dk and dv of that head, so no two workers write the same slot.
	parallelFor(s.Batch*s.KVHeads, func(lo, hi int) {
		p := make([]float32, s.Seq)
		dp := make([]float32, s.Seq)
		for bg := lo; bg < hi; bg++ {
			b, g := bg/s.KVHeads, bg%s.KVHeads
			for h := g * s.GroupSize; h < (g+1)*s.GroupSize; h++ {
				for i := range s.Seq {
					row := b*s.Seq + i
					qi := q[row*s.QWidth+h*s.HeadDim:][:s.HeadDim]
					doi := dout[row*s.QWidth+h*s.HeadDim:][:s.HeadDim]
					dqi := dq[row*s.QWidth+h*s.HeadDim:][:s.HeadDim]
					clear(dqi)
					if !attnProbs(p, qi, k, mask, s, b, g, i) {
						continue
					}
					var sum float64
					for j := 0; j <= i; j++ {
						if p[j] == 0 {
							dp[j] = 0
							continue
						}
						vj := v[(b*s.Seq+j)*s.KVWidth+g*s.HeadDim:][:s.HeadDim]
						var dot float32
						for d, x := range doi {
							dot += x * vj[d]
						}
						dp[j] = dot
						sum += float64(p[j] * dot)
					}
					for j := 0; j <= i; j++ {
						if p[j] == 0 {
							continue
						}
						ds := p[j] * (dp[j] - float32(sum)) * s.Scale
						off := (b*s.Seq+j)*s.KVWidth + g*s.HeadDim
						kj := k[off:][:s.HeadDim]
						dkj := dk[off:][:s.HeadDim]
						dvj := dv[off:][:s.HeadDim]
						for d := range dqi {
							dqi[d] += ds * kj[d]
							dkj[d] += ds * qi[d]
							dvj[d] += p[j] * doi[d]
						}
					}
				}
			}
		}
	})
}
