//go:build t2mcuda

package gpu

import "fmt"

// loraScale is lora_alpha / r of the anchor (alpha 16, r 8).
const loraScale = 2

// step runs the GEMM-level pieces of one training step and returns its device time and the per-op split.
// Activation buffers are taken from the arena as a no-checkpointing step would keep them (per layer: the
// inputs of the seven linears, q/k/v, gate/up outputs, two residuals, LoRA hiddens), and released in the
// backward, so the arena's peak is that of a real step's weights plus saved activations.
func (s *benchState) step() (float64, map[string]float64, error) {
	s.ar.Release(s.saved)
	cfg := s.cfg
	BT, H, I, KV, r := cfg.Batch*cfg.Seq, cfg.Hidden, cfg.Intermediate, cfg.KVHeads*cfg.HeadDim, cfg.Rank
	lossTok := cfg.Batch * (cfg.Seq - int(float64(cfg.Seq)*(1-cfg.LossFrac)))
	var err error
	alloc := func(rows, cols int, t DType, what string) Mat {
		if err != nil {
			return Mat{}
		}
		var b Buffer
		b, err = s.ar.Alloc(int64(rows*cols)*t.Size(), what)
		return M(b, rows, cols, t)
	}
	// Step-wide temporaries: gradients flowing through a layer, the o/down outputs, lm_head's logits.
	tmpH := alloc(BT, H, BF16T, "o/down output")        // [BT, H]
	dH := alloc(BT, H, BF16T, "d residual")             // [BT, H]
	dKV := alloc(BT, KV, BF16T, "dk/dv")                // [BT, KV]
	dAct := alloc(BT, I, BF16T, "d act")                // [BT, I]
	dX := alloc(BT, H, BF16T, "d x")                    // [BT, H]
	dh := alloc(BT, r, BF16T, "d lora hidden")          // [BT, r]
	logits := alloc(lossTok, cfg.Vocab, F32T, "logits") // [loss tokens, V]
	dLogits := alloc(lossTok, cfg.Vocab, BF16T, "d logits")
	if err != nil {
		return 0, nil, err
	}
	t := &timer{d: s.d}
	t.mark("start")
	W := func(l *benchLinear) Mat { return M(s.scratch, l.spec.out, l.spec.in, BF16T) }
	dequant := func(l *benchLinear) {
		if err == nil {
			err = s.d.DequantNF4(l.w, s.scratch)
			t.mark("nf4 dequant")
		}
	}
	marks := make([]int64, len(s.layers))
	s.flops = 0
	// Forward.
	for li, lins := range s.layers {
		marks[li] = s.ar.Mark()
		xn := alloc(BT, H, BF16T, "xn")
		attn := alloc(BT, H, BF16T, "attn")
		xn2 := alloc(BT, H, BF16T, "xn2")
		act := alloc(BT, I, BF16T, "act")
		alloc(BT, H, BF16T, "residual 1")
		alloc(BT, H, BF16T, "residual 2")
		in := map[string]Mat{"q": xn, "k": xn, "v": xn, "o": attn, "gate": xn2, "up": xn2, "down": act}
		for _, l := range lins {
			l.x = in[l.spec.name]
			switch l.spec.name {
			case "o", "down":
				l.y = tmpH
			default:
				l.y = alloc(BT, l.spec.out, BF16T, l.spec.name+" out")
			}
			if l.spec.lora {
				l.h = alloc(BT, r, BF16T, l.spec.name+" lora h")
			}
			dequant(l)
			if err != nil {
				return 0, nil, err
			}
			err = s.blas.Linear(l.x, W(l), 0, l.y)
			t.mark("frozen fwd gemm")
			s.flops += 2 * float64(BT) * float64(l.spec.out*l.spec.in)
			if l.spec.lora && err == nil {
				if err = s.blas.Linear(l.x, l.a, 0, l.h); err == nil {
					err = s.blas.Gemm(false, true, loraScale, l.h, l.b, 1, l.y)
				}
				t.mark("lora fwd gemm")
				s.flops += 4 * float64(BT) * float64(r*(l.spec.in+l.spec.out))
			}
			if err != nil {
				return 0, nil, fmt.Errorf("layer %d %s forward: %w", li, l.spec.name, err)
			}
		}
	}
	// lm_head over the loss tokens only, and its input gradient (the fused CE kernel goes between).
	hid := lossHidden(s, lossTok)
	if err = s.blas.Linear(hid, s.lmHead, 0, logits); err != nil {
		return 0, nil, err
	}
	t.mark("lm_head fwd gemm")
	if err = s.blas.LinearGradInput(dLogits, s.lmHead, 1, 0, M(dX.Buf, lossTok, H, BF16T)); err != nil {
		return 0, nil, err
	}
	t.mark("lm_head dx gemm")
	s.flops += 4 * float64(lossTok) * float64(cfg.Vocab*H)
	// Backward, last layer first.
	for li := len(s.layers) - 1; li >= 0; li-- {
		lins := s.layers[li]
		dy := map[string]Mat{"down": dH, "up": dAct, "gate": dAct, "o": dH, "q": dH, "k": dKV, "v": dKV}
		for j := len(lins) - 1; j >= 0; j-- {
			l := lins[j]
			var dx Mat
			beta := float32(0)
			switch l.spec.name {
			case "down":
				dx = dAct
			case "gate", "k", "v":
				dx, beta = dX, 1 // accumulates onto up's / q's input gradient
			default:
				dx = dX
			}
			dequant(l)
			if err != nil {
				return 0, nil, err
			}
			err = s.blas.LinearGradInput(dy[l.spec.name], W(l), 1, beta, dx)
			t.mark("frozen dx gemm")
			s.flops += 2 * float64(BT) * float64(l.spec.out*l.spec.in)
			if l.spec.lora && err == nil {
				err = s.loraBackward(t, l, dy[l.spec.name], dh, dx)
				s.flops += 8 * float64(BT) * float64(r*(l.spec.in+l.spec.out))
			}
			if err != nil {
				return 0, nil, fmt.Errorf("layer %d %s backward: %w", li, l.spec.name, err)
			}
		}
		s.ar.Release(marks[li])
	}
	total, err := t.finish()
	return total, t.ops, err
}

// lossHidden stands for the final hidden state of the loss tokens: the first rows of the last layer's
// saved q input.
func lossHidden(s *benchState, tokens int) Mat {
	x := s.layers[len(s.layers)-1][0].x
	x.Rows = tokens
	return x
}

// loraBackward computes LoRA's gradients and adds its input gradient to dx, with y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ:
// dB = s·dyᵀ·h, dh = s·dy·B, dA = dhᵀ·x, dx += dh·A.
func (s *benchState) loraBackward(t *timer, l *benchLinear, dy, dh, dx Mat) error {
	if err := s.blas.LinearGradWeight(dy, l.h, loraScale, 0, l.db); err != nil {
		return err
	}
	t.mark("lora bwd dB=s·dyᵀ·h")
	if err := s.blas.Gemm(false, false, loraScale, dy, l.b, 0, dh); err != nil {
		return err
	}
	t.mark("lora bwd dh=s·dy·B")
	if err := s.blas.LinearGradWeight(dh, l.x, 1, 0, l.da); err != nil {
		return err
	}
	t.mark("lora bwd dA=dhᵀ·x")
	err := s.blas.Gemm(false, false, 1, dh, l.a, 1, dx)
	t.mark("lora bwd dx+=dh·A")
	return err
}
