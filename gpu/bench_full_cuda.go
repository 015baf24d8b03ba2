//go:build t2mcuda

package gpu

import (
	"fmt"
	"math"
)

// fullState holds what the full training step needs beyond the linears: norm weights, token ids, positions,
// labels, the loss and the grad-norm outputs.
type fullState struct {
	ln1, ln2           []Buffer // per layer [H] bf16
	lnF                Buffer   // [H] bf16
	ids, pos, labels   Buffer   // [B*T] int32
	loss               Buffer   // [B] fp32, one partial loss per sequence
	gnorm, gscratch    Buffer   // [2] fp32 (norm, clip factor), partial sums
	lossStart          int      // first row of each sequence whose next-token label counts
	lossItems          int      // tokens in the loss
	step               int      // AdamW step count
	adam               AdamWHyper
	lastLoss, lastNorm float32
}

// newFullState allocates and fills fullState: norm weights near 1, random ids, labels = ids with the first
// 70% of each sequence ignored (−100), as the anchor does.
func newFullState(s *benchState) (*fullState, error) {
	cfg := s.cfg
	BT, H := cfg.Batch*cfg.Seq, cfg.Hidden
	f := &fullState{adam: AdamWHyper{LR: 2e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}}
	ones := make([]uint16, H)
	for i := range ones {
		ones[i] = BF16(1 + 0.01*float32(i%7))
	}
	take := func(bytes int64, what string) Buffer {
		b, err := s.ar.Alloc(bytes, what)
		if err != nil {
			panic(err)
		}
		return b
	}
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
			}
		}()
		for l := 0; l < cfg.Layers; l++ {
			f.ln1 = append(f.ln1, take(int64(H)*2, "ln1"))
			f.ln2 = append(f.ln2, take(int64(H)*2, "ln2"))
		}
		f.lnF = take(int64(H)*2, "final norm")
		f.ids, f.pos, f.labels = take(int64(BT)*4, "ids"), take(int64(BT)*4, "positions"), take(int64(BT)*4, "labels")
		f.loss = take(int64(cfg.Batch)*4, "loss")
		f.gnorm, f.gscratch = take(8, "grad norm"), take(GradNormScratchBytes(), "grad norm scratch")
	}()
	if err != nil {
		return nil, err
	}
	for _, b := range append(append([]Buffer{f.lnF}, f.ln1...), f.ln2...) {
		if err := Upload(s.d, b, ones); err != nil {
			return nil, err
		}
	}
	ids, pos, labels := make([]int32, BT), make([]int32, BT), make([]int32, BT)
	ignore := int(float64(cfg.Seq) * (1 - cfg.LossFrac)) // labels[:, :int(T*0.7)] = −100
	for i := range ids {
		ids[i] = int32(splitmix64(uint64(i)) % 151643)
		pos[i] = int32(i % cfg.Seq)
		labels[i] = ids[i]
		if i%cfg.Seq < ignore {
			labels[i] = -100
		}
	}
	f.lossStart = max(ignore-1, 0) // row n predicts labels[n+1]
	f.lossItems = cfg.Batch * (cfg.Seq - ignore)
	for _, u := range []struct {
		b Buffer
		v []int32
	}{{f.ids, ids}, {f.pos, pos}, {f.labels, labels}} {
		if err := Upload(s.d, u.b, u.v); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// dequant returns l's weight as bf16 [out, in]: from the weight pipe when overlapping, else dequantized
// now into the single scratch buffer.
func (s *benchState) dequant(t *timer, l *benchLinear) (Mat, error) {
	if s.pipe != nil {
		W, err := s.pipe.weight(l)
		t.mark("wait for dequant")
		return W, err
	}
	if err := s.d.DequantNF4(l.w, s.scratch); err != nil {
		return Mat{}, err
	}
	t.mark("nf4 dequant")
	return M(s.scratch, l.spec.out, l.spec.in, BF16T), nil
}

// fwdLinear is y = x·Wᵀ (+ s·(x·Aᵀ)·Bᵀ), W dequantized into the shared scratch first.
func (s *benchState) fwdLinear(t *timer, l *benchLinear, x, y Mat) error {
	r := s.cfg.Rank
	BT := x.Rows
	l.x, l.y = x, y
	W, err := s.dequant(t, l)
	if err != nil {
		return err
	}
	if err := s.blas.Linear(x, W, 0, y); err != nil {
		return err
	}
	t.mark("frozen fwd gemm")
	if s.pipe != nil {
		if err := s.pipe.done(); err != nil {
			return err
		}
	}
	s.flops += 2 * float64(BT) * float64(l.spec.out*l.spec.in)
	if !l.spec.lora {
		return nil
	}
	if err := s.blas.Linear(x, l.a, 0, l.h); err != nil {
		return err
	}
	t.mark("lora fwd h=x·Aᵀ")
	if err := s.blas.Gemm(false, true, loraScale, l.h, l.b, 1, y); err != nil {
		return err
	}
	t.mark("lora fwd y+=s·h·Bᵀ")
	s.flops += 4 * float64(BT) * float64(r*(l.spec.in+l.spec.out))
	return nil
}

// bwdLinear is dx = beta·dx + dy·W (+ LoRA's input gradient), with LoRA's dA, dB written.
func (s *benchState) bwdLinear(t *timer, l *benchLinear, dy, dx Mat, beta float32, dh Mat) error {
	W, err := s.dequant(t, l)
	if err != nil {
		return err
	}
	if err := s.blas.LinearGradInput(dy, W, 1, beta, dx); err != nil {
		return err
	}
	t.mark("frozen dx gemm")
	if s.pipe != nil {
		if err := s.pipe.done(); err != nil {
			return err
		}
	}
	BT := dy.Rows
	s.flops += 2 * float64(BT) * float64(l.spec.out*l.spec.in)
	if !l.spec.lora {
		return nil
	}
	if err := s.loraBackward(t, l, dy, dh, dx); err != nil {
		return err
	}
	s.flops += 8 * float64(BT) * float64(s.cfg.Rank*(l.spec.in+l.spec.out))
	return nil
}

// stepFull runs one whole training step of the Qwen2 decoder at cfg's shape with the kernels of this
// package, in the order the GPU machine will run the graph: embedding, 28 × (RMSNorm, q/k/v NF4+LoRA
// linears, RoPE, flash attention, o linear, residual, RMSNorm, gate/up linears, SwiGLU, down linear,
// residual), final RMSNorm, lm_head + CE on the loss rows only; the backward of all of it (input gradients,
// LoRA gradients); global grad-norm clip and AdamW on the LoRA parameters; one loss readback.
// Not included yet: q/k/v biases (three element-wise adds per layer) and LoRA dropout.
func (s *benchState) stepFull() (float64, map[string]float64, error) {
	s.ar.Release(s.saved)
	f, cfg := s.full, s.cfg
	B, T := cfg.Batch, cfg.Seq
	BT, H, I, KV, r := B*T, cfg.Hidden, cfg.Intermediate, cfg.KVHeads*cfg.HeadDim, cfg.Rank
	const eps = 1e-6
	theta := float32(1e6)
	ad := AttnDims{B: B, T: T, H: cfg.Heads, KVH: cfg.KVHeads, D: cfg.HeadDim,
		Scale: float32(1 / math.Sqrt(float64(cfg.HeadDim)))}
	var err error
	alloc := func(rows, cols int, t DType, what string) Mat {
		if err != nil {
			return Mat{}
		}
		var b Buffer
		b, err = s.ar.Alloc(int64(rows*cols)*t.Size(), what)
		return M(b, rows, cols, t)
	}
	bytes := func(n int64, what string) Buffer {
		if err != nil {
			return Buffer{}
		}
		var b Buffer
		b, err = s.ar.Alloc(n, what)
		return b
	}
	// Step-wide temporaries.
	tmpH, tmpH2 := alloc(BT, H, BF16T, "tmp H"), alloc(BT, H, BF16T, "tmp H 2") // [BT, H]
	act, dAct := alloc(BT, I, BF16T, "act"), alloc(BT, I, BF16T, "d act")       // [BT, I]
	dGate, dUp := alloc(BT, I, BF16T, "d gate"), alloc(BT, I, BF16T, "d up")    // [BT, I]
	dres, dmid, dxn := alloc(BT, H, BF16T, "d res"), alloc(BT, H, BF16T, "d mid"), alloc(BT, H, BF16T, "d xn")
	dq, dk, dv := alloc(BT, H, BF16T, "dq"), alloc(BT, KV, BF16T, "dk"), alloc(BT, KV, BF16T, "dv")
	dh := alloc(BT, r, BF16T, "d lora h") // [BT, r]
	attnScratch := bytes(AttentionBackwardScratchBytes(ad), "attention scratch")
	lossRows := T - f.lossStart
	ce := CEDims{B: 1, T: lossRows, Hidden: H, Vocab: cfg.Vocab, IgnoreIndex: -100, Chunk: lossRows}
	ceScratch := bytes(LMHeadCrossEntropyScratchBytes(ce), "lm_head+CE scratch")
	x := alloc(BT, H, BF16T, "embeddings") // [BT, H] the residual stream entering layer 0
	if err != nil {
		return 0, nil, err
	}
	t := &timer{d: s.d}
	t.mark("start")
	s.flops = 0
	chk := func(name string, e error) {
		if err == nil && e != nil {
			err = fmt.Errorf("%s: %w", name, e)
		}
	}
	do := func(name string, e error) { // an op of its own: a line of the time breakdown
		chk(name, e)
		t.mark(name)
	}
	do("embedding", EmbeddingForward(s.d, x.Buf, s.embed.Buf, f.ids, Buffer{}, BT, cfg.Vocab, H))
	if s.pipe != nil {
		var order []*benchLinear
		for _, lins := range s.layers {
			order = append(order, lins...)
		}
		chk("weight pipe", s.pipe.begin(order))
	}

	type saved struct {
		x, xn, q, k, v, o, xmid, xn2, gate, up Mat
		lse                                    Buffer
		mark                                   int64
	}
	sv := make([]saved, len(s.layers))
	for li, lins := range s.layers {
		q, k, v, o, gate, up, down := lins[0], lins[1], lins[2], lins[3], lins[4], lins[5], lins[6]
		c := saved{x: x, mark: s.ar.Mark()}
		c.xn, c.q, c.k, c.v = alloc(BT, H, BF16T, "xn"), alloc(BT, H, BF16T, "q"), alloc(BT, KV, BF16T, "k"),
			alloc(BT, KV, BF16T, "v")
		c.o, c.lse = alloc(BT, H, BF16T, "attn out"), bytes(int64(B*cfg.Heads*T)*4, "lse")
		c.xmid, c.xn2 = alloc(BT, H, BF16T, "x mid"), alloc(BT, H, BF16T, "xn2")
		c.gate, c.up = alloc(BT, I, BF16T, "gate"), alloc(BT, I, BF16T, "up")
		for _, l := range lins[:6] {
			l.h = alloc(BT, r, BF16T, "lora h")
		}
		next := alloc(BT, H, BF16T, "x next")
		if err != nil {
			return 0, nil, fmt.Errorf("layer %d: %w", li, err)
		}
		do("rmsnorm", RMSNormForward(s.d, c.xn.Buf, x.Buf, f.ln1[li], BT, H, eps))
		chk("linear q", s.fwdLinear(t, q, c.xn, c.q))
		chk("linear k", s.fwdLinear(t, k, c.xn, c.k))
		chk("linear v", s.fwdLinear(t, v, c.xn, c.v))
		do("rope", RoPE(s.d, c.q.Buf, c.q.Buf, f.pos, BT, cfg.Heads, cfg.HeadDim, theta, false))
		do("rope", RoPE(s.d, c.k.Buf, c.k.Buf, f.pos, BT, cfg.KVHeads, cfg.HeadDim, theta, false))
		do("attention fwd", AttentionForward(s.d, c.o.Buf, c.lse, c.q.Buf, c.k.Buf, c.v.Buf, Buffer{}, ad))
		chk("linear o", s.fwdLinear(t, o, c.o, tmpH))
		do("residual add", AddBF16(s.d, c.xmid.Buf, x.Buf, tmpH.Buf, BT*H))
		do("rmsnorm", RMSNormForward(s.d, c.xn2.Buf, c.xmid.Buf, f.ln2[li], BT, H, eps))
		chk("linear gate", s.fwdLinear(t, gate, c.xn2, c.gate))
		chk("linear up", s.fwdLinear(t, up, c.xn2, c.up))
		do("swiglu", SwiGLUForward(s.d, act.Buf, c.gate.Buf, c.up.Buf, BT*I))
		chk("linear down", s.fwdLinear(t, down, act, tmpH))
		do("residual add", AddBF16(s.d, next.Buf, c.xmid.Buf, tmpH.Buf, BT*H))
		if err != nil {
			return 0, nil, fmt.Errorf("layer %d forward: %w", li, err)
		}
		sv[li], x = c, next
	}
	// Final norm, then lm_head + CE on each sequence's loss rows only; dh of the other rows is zero.
	do("rmsnorm", RMSNormForward(s.d, tmpH2.Buf, x.Buf, f.lnF, BT, H, eps))
	do("memset", s.d.Memset(tmpH.Buf, 0))
	rowBytes := int64(H) * 2
	for b := 0; b < B; b++ {
		off := (int64(b*T) + int64(f.lossStart)) * rowBytes
		n := int64(lossRows) * rowBytes
		do("lm_head+CE", LMHeadCrossEntropy(s.d, f.loss.Slice(int64(b)*4, 4), tmpH.Buf.Slice(off, n),
			tmpH2.Buf.Slice(off, n), s.lmHead.Buf, f.labels.Slice(int64(b*T+f.lossStart)*4, int64(lossRows)*4),
			Buffer{}, ceScratch, ce, float32(f.lossItems), 1))
	}
	s.flops += 4 * float64(B*lossRows) * float64(cfg.Vocab*H)
	do("rmsnorm bwd", RMSNormBackward(s.d, dres.Buf, tmpH.Buf, x.Buf, f.lnF, BT, H, eps))
	if s.pipe != nil {
		var order []*benchLinear
		for li := len(s.layers) - 1; li >= 0; li-- {
			ls := s.layers[li] // the backward's order: down, up, gate, o, q, k, v
			order = append(order, ls[6], ls[5], ls[4], ls[3], ls[0], ls[1], ls[2])
		}
		chk("weight pipe", s.pipe.begin(order))
	}
	if err != nil {
		return 0, nil, err
	}
	for li := len(s.layers) - 1; li >= 0; li-- {
		q, k, v, o, gate, up, down := s.layers[li][0], s.layers[li][1], s.layers[li][2], s.layers[li][3],
			s.layers[li][4], s.layers[li][5], s.layers[li][6]
		c := sv[li]
		for j, l := range s.layers[li][:6] { // restore each linear's saved input and LoRA hidden
			l.x = []Mat{c.xn, c.xn, c.xn, c.o, c.xn2, c.xn2}[j]
		}
		chk("linear down bwd", s.bwdLinear(t, down, dres, dAct, 0, dh))
		do("swiglu bwd", SwiGLUBackward(s.d, dGate.Buf, dUp.Buf, dAct.Buf, c.gate.Buf, c.up.Buf, BT*I))
		chk("linear up bwd", s.bwdLinear(t, up, dUp, dxn, 0, dh))
		chk("linear gate bwd", s.bwdLinear(t, gate, dGate, dxn, 1, dh))
		do("rmsnorm bwd", RMSNormBackward(s.d, tmpH.Buf, dxn.Buf, c.xmid.Buf, f.ln2[li], BT, H, eps))
		do("residual add", AddBF16(s.d, dmid.Buf, tmpH.Buf, dres.Buf, BT*H))
		chk("linear o bwd", s.bwdLinear(t, o, dmid, tmpH2, 0, dh))
		do("attention bwd", AttentionBackward(s.d, dq.Buf, dk.Buf, dv.Buf, c.q.Buf, c.k.Buf, c.v.Buf, c.o.Buf,
			tmpH2.Buf, c.lse, Buffer{}, attnScratch, ad))
		do("rope", RoPE(s.d, dq.Buf, dq.Buf, f.pos, BT, cfg.Heads, cfg.HeadDim, theta, true))
		do("rope", RoPE(s.d, dk.Buf, dk.Buf, f.pos, BT, cfg.KVHeads, cfg.HeadDim, theta, true))
		chk("linear q bwd", s.bwdLinear(t, q, dq, dxn, 0, dh))
		chk("linear k bwd", s.bwdLinear(t, k, dk, dxn, 1, dh))
		chk("linear v bwd", s.bwdLinear(t, v, dv, dxn, 1, dh))
		do("rmsnorm bwd", RMSNormBackward(s.d, tmpH.Buf, dxn.Buf, c.x.Buf, f.ln1[li], BT, H, eps))
		do("residual add", AddBF16(s.d, dres.Buf, tmpH.Buf, dmid.Buf, BT*H))
		if err != nil {
			return 0, nil, fmt.Errorf("layer %d backward: %w", li, err)
		}
		s.ar.Release(c.mark)
	}
	f.step++
	do("grad norm", GradNormClip(s.d, f.gnorm, s.loraG, f.gscratch, s.loraN, 1.0))
	do("adamw", AdamWStep(s.d, s.loraP, s.loraM, s.loraV, s.loraG, s.loraBF, f.gnorm.Slice(4, 4), s.loraN, f.step,
		f.adam))
	losses := make([]float32, B)
	do("loss readback", Download(s.d, losses, f.loss))
	var gn [2]float32
	if err == nil {
		err = Download(s.d, gn[:], f.gnorm)
	}
	if err != nil {
		return 0, nil, err
	}
	f.lastLoss, f.lastNorm = 0, gn[0]
	for _, l := range losses {
		f.lastLoss += l
	}
	total, err := t.finish()
	return total, t.ops, err
}
