//go:build t2mcuda

package gpu

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"gorgonia.org/cu"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/ops"
	"github.com/t2m/t2m/model"
)

// defaultPrefillRows bounds the rows of one prefill forward (prompts are prefilled together up to this many
// tokens, padding included), so the activations stay a few hundred MiB at the 7B shape.
const defaultPrefillRows = 8192

// decoder runs greedy decoding on the device (it implements model.DecodeSteps): per-slot KV caches on the
// device, prefill of prompts of any lengths together (right-padded) through the flash attention forward,
// batched single-token steps through decode attention (its keys split over several blocks when the rows are
// few), lm_head on each sequence's last position only, argmax on the device; only token ids cross to the
// host (and the ids, positions and slots of the next rows back to the device).
type decoder struct {
	d    *cuda.Device
	blas *cuda.BLAS
	ar   *cuda.Arena
	w    *decodeWeights
	rows int // the most rows one forward takes (prefill chunk)
	// gemvRows, when > 0, lowers the most rows an NF4 projection multiplies straight from its codes
	// (ops.NF4GEMVRows) rather than dequantized per use (tests cover both paths on a tiny model).
	gemvRows int
	// reuseMin is the shortest cached prefix a prefill reuses (0: defaultReuseMin; < 0: never).
	reuseMin int
	// prompted and reused count the prompt tokens Prefill was given and those it took from a cache.
	prompted, reused int
	// steps holds each step size's forward as a CUDA graph (decode_graph.go); nil when graphs are off.
	steps *stepGraphs
	// prof, when set (gpuGenerator.SetProfile), times each op of the decode steps; steps then run eagerly.
	prof *decodeProfile
	// overlap says whether projections that share their input run on side streams (decodeOverlap, read once);
	// ov holds those streams (decode_overlap.go), made by the first forward that uses them.
	overlap bool
	ov      *overlap
	// fuseAdd says whether residual adds are done by the projection's GEMV (decodeFuseAdd, read once);
	// fusedAdds counts them (devOps.Add; tests).
	fuseAdd   bool
	fusedAdds int
	// pdl says whether forwards launch their kernels with programmatic dependent launch (decodePDL, read once):
	// on a Hopper card each kernel's prologue (a GEMV's weight loads and tables) overlaps the previous one's end.
	pdl bool
	// headRows: a prefill runs the last layer's o projection, MLP and final norm on the rows lm_head reads only
	// (devOps.HeadRows).
	headRows bool

	// Set by begin, released by end.
	mark     int64
	dims     ops.DecodeDims
	kc, vc   []cuda.Buffer          // per layer [Slots, Cap, KVH·D] bf16
	x, h     cuda.Buffer            // [rows, H] bf16: residual stream, normed
	q, attn  cuda.Buffer            // [rows, Hq·D] bf16
	k, v     cuda.Buffer            // [rows, KVH·D] bf16
	tmp      cuda.Buffer            // [rows, H] bf16: projection outputs added to the residual
	gate, up cuda.Buffer            // [rows, I] bf16
	loraH    cuda.Buffer            // [rows, rank] bf16 (LoRA applied per use)
	lse      cuda.Buffer            // [rows·Hq] fp32 (the attention forward's logsumexp, unused here)
	part     cuda.Buffer            // decode attention's key slices (ops.DecodeAttentionSplit), or zero
	cs       cuda.Buffer            // [rows, D/2] (cos, sin) fp32: RoPE table
	ones     cuda.Buffer            // [rows] bf16 ones: a bias is the K = 1 GEMM ones·biasᵀ
	meta     cuda.Buffer            // [3·rows + seqs] int32: one forward's ids | positions | slots | lm_head's rows
	logits   cuda.Buffer            // [seqs, V] fp32
	next     cuda.Buffer            // [seqs] int32
	outs     map[string]cuda.Buffer // each projection's output buffer by module path (q, k, v → q, k, v; o, down → tmp; ...)
	cached   [][]int32              // per sequence slot: the tokens whose keys and values its caches hold, from position 0
	gidx     cuda.Buffer            // [3·rows] int32: the row gathers of a prefill after cached prefixes (prefillSuffixes)
	wide     [2]cuda.Buffer         // that prefill's attention scratch: q, k, v [B·T, Q+2·KV] and o [B·T, Q] bf16 (gate and up when wide enough)

	// onLogits, when set (tests), sees the logits [n, V] of sequences seqs after each prefill or step.
	onLogits func(seqs []int32, logits cuda.Buffer, n int) error

	// keep, when set (sampling: decode_sample.go), makes choose append the logits [n, V] it reads to kept.
	keep bool
	kept []float32
}

// newDecoder wraps device weights; prefillRows ≤ 0 means defaultPrefillRows.
func newDecoder(d *cuda.Device, blas *cuda.BLAS, ar *cuda.Arena, w *decodeWeights, prefillRows int) *decoder {
	if prefillRows <= 0 {
		prefillRows = defaultPrefillRows
	}
	g := &decoder{d: d, blas: blas, ar: ar, w: w, rows: prefillRows, mark: -1}
	if decodeGraphs() {
		g.steps = &stepGraphs{}
	}
	g.overlap, g.fuseAdd, g.pdl, g.headRows = decodeOverlap(), decodeFuseAdd(), decodePDL(), decodeHeadRows()
	return g
}

// begin allocates the caches ([L] × K and V [seqs, capacity, KVH·D]) and the activations.
func (g *decoder) Begin(seqs, capacity int) error {
	if g.mark >= 0 {
		return fmt.Errorf("gpu: decoder: begin while a generation is running")
	}
	c := g.w.w.Config
	g.dims = ops.DecodeDims{Slots: seqs, Cap: capacity, H: c.NumHeads, KVH: c.NumKVHeads, D: c.HeadDim,
		Scale: float32(1 / math.Sqrt(float64(c.HeadDim)))}
	if err := g.dims.Check("decoder"); err != nil {
		return err
	}
	R := max(g.rows, capacity, seqs) // a prompt longer than the chunk still prefills in one piece
	g.rows = R
	g.mark = g.ar.Mark()
	var err error
	take := func(n int64, what string) cuda.Buffer {
		if err != nil {
			return cuda.Buffer{}
		}
		var b cuda.Buffer
		b, err = g.ar.Alloc(n, what)
		return b
	}
	g.kc, g.vc = make([]cuda.Buffer, c.NumLayers), make([]cuda.Buffer, c.NumLayers)
	for l := range g.kc {
		g.kc[l], g.vc[l] = take(g.dims.CacheBytes(), "k cache"), take(g.dims.CacheBytes(), "v cache")
	}
	r64, H, Q, KV, I := int64(R), int64(c.HiddenSize), int64(c.QDim()), int64(c.KVDim()), int64(c.IntermediateSize)
	g.x, g.h, g.tmp = take(r64*H*2, "x"), take(r64*H*2, "h"), take(r64*H*2, "tmp")
	g.q, g.attn = take(r64*Q*2, "q"), take(r64*Q*2, "attn")
	g.k, g.v = take(r64*KV*2, "k"), take(r64*KV*2, "v")
	g.gate, g.up = take(r64*I*2, "gate"), take(r64*I*2, "up")
	rank := 1
	for _, lin := range g.w.lins {
		if lin.a.Bytes != 0 {
			rank = max(rank, lin.rank)
		}
	}
	g.loraH = take(r64*int64(rank)*2, "lora h")
	g.lse = take(r64*int64(c.NumHeads)*4, "lse")
	g.cs = take(ops.RoPETableBytes(R, c.HeadDim), "rope table")
	g.ones = take(r64*2, "ones")
	g.meta = take((3*r64+int64(seqs))*4, "ids, positions, slots, lm_head rows")
	g.logits = take(int64(max(seqs, 1))*int64(c.VocabSize)*4, "logits")
	g.next = take(int64(seqs)*4, "next ids")
	g.gidx = take(3*r64*4, "prefix gathers")
	g.wide = [2]cuda.Buffer{g.gate, g.up}
	if I < Q+2*KV { // the attention of prefills after cached prefixes runs while gate and up are free
		g.wide = [2]cuda.Buffer{take(r64*(Q+2*KV)*2, "prefix attention q, k, v"), take(r64*Q*2, "prefix attention o")}
	}
	g.part = cuda.Buffer{}
	if n := g.dims.SplitBytes(seqs); n > 0 {
		g.part = take(n, "decode attention slices")
	}
	if err != nil {
		g.End()
		return fmt.Errorf("gpu: decoder: KV caches for %d sequences of %d tokens: %w; "+
			"lower --generation-batch, --max-len or --max-new-tokens, or unset T2M_GPU_WEIGHTS=bf16 to keep the weights at 4 bits", seqs, capacity, err)
	}
	g.outs, g.cached = map[string]cuda.Buffer{}, make([][]int32, seqs)
	for _, l := range g.w.w.Layers {
		for p, b := range map[*model.Projection]cuda.Buffer{l.Q: g.q, l.K: g.k, l.V: g.v, l.O: g.tmp, l.Gate: g.gate, l.Up: g.up, l.Down: g.tmp} {
			g.outs[p.Module] = b
		}
	}
	ones := make([]uint16, R)
	for i := range ones {
		ones[i] = cuda.BF16(1)
	}
	if err := cuda.Upload(g.d, g.ones, ones); err != nil {
		g.End()
		return err
	}
	return nil
}

// end releases the caches and activations.
func (g *decoder) End() {
	g.steps.reset() // their buffers go with the caches
	g.cached = nil
	if g.mark >= 0 {
		g.ar.Release(g.mark)
		g.mark = -1
	}
}

// linear is y = x·Wᵀ + b (+ s·(x·Aᵀ)·Bᵀ). x [rows, in], y [rows, out] bf16. An NF4 weight is multiplied
// straight from its codes (ops.NF4GEMVFused, bias and LoRA in its epilogue) for up to ops.NF4GEMVRows rows
// (small decode steps), else dequantized into the scratch for ops.Linear's GEMM (prefill, large steps). There
// an adapter kept apart is added as PEFT's unmerged forward adds it, s·(x·Aᵀ)·Bᵀ beside the base product
// (ops.Linear writes it first and the base GEMM adds onto it with beta 1). Merging it into the dequantized
// weight instead (an fp32 rank-r sum per element of every weight, every step) decoded 12% slower at 96 rows
// (gpu/DECODE_NOTES.md).
func (g *decoder) linear(lin *decodeLinear, x, y cuda.Buffer, rows int) error {
	return g.linearOn(g.d.Stream, 0, lin, x, y, rows, 0)
}

// work is the part of the NF4 scratch that the NF4 GEMV on slot's stream may use for partial sums (slot 0:
// the main stream, i + 1: side stream i): the scratch cut in overlapStreams + 1 parts, so projections that
// run together never share one. A projection that dequantizes into the whole scratch runs on the main stream
// with nothing beside it (forkState.dequant).
func (g *decoder) work(slot int) cuda.Buffer {
	part := g.w.scratch.Bytes / (overlapStreams + 1) &^ 255
	if part == 0 {
		return cuda.Buffer{}
	}
	return g.w.scratch.Slice(int64(slot)*part, part)
}

// gemv reports whether linear multiplies lin straight from its NF4 codes for rows rows (one kernel on one
// stream, no shared scratch: what may run on a side stream).
func (g *decoder) gemv(lin *decodeLinear, rows int) bool {
	return lin.nf4 != nil && rows <= ops.NF4GEMVRows(lin.nf4) && (g.gemvRows <= 0 || rows <= g.gemvRows)
}

// linearOn is linear with the NF4 GEMV on stream s (its partial sums in scratch slot slot, see work), adding
// beta·y (beta 0 or, for the NF4 GEMV only, 1);
// everything else runs on the main stream (s must be it unless g.gemv(lin, rows) and lin has no adapter kept
// apart).
func (g *decoder) linearOn(s cu.Stream, slot int, lin *decodeLinear, x, y cuda.Buffer, rows int, beta float32) error {
	X := cuda.M(x, rows, lin.in, cuda.BF16T)
	if g.gemv(lin, rows) {
		a := ops.NF4GEMVArgs{X: X, W: lin.nf4, Y: cuda.M(y, rows, lin.out, cuda.BF16T), Bias: lin.bias, Beta: beta,
			Work: g.work(slot)}
		if lin.a.Bytes != 0 { // h = x·Aᵀ (bf16, as ops.Linear's), then s·h·Bᵀ summed in fp32 with x·Wᵀ + b
			a.H, a.B, a.Scale = cuda.M(g.loraH, rows, lin.rank, cuda.BF16T), cuda.M(lin.b, lin.out, lin.rank, cuda.BF16T), lin.scale
			if err := g.blas.Linear(X, cuda.M(lin.a, lin.rank, lin.in, cuda.BF16T), 0, a.H); err != nil {
				return fmt.Errorf("%s: lora_A: %w", lin.name, err)
			}
		}
		if err := ops.NF4GEMVFusedOn(g.d, s, a); err != nil {
			return fmt.Errorf("%s: %w", lin.name, err)
		}
		return nil
	}
	if beta != 0 {
		return fmt.Errorf("gpu: decoder: %s: beta %g outside the NF4 GEMV", lin.name, beta)
	}
	l := ops.LinearArgs{X: X, W: cuda.M(lin.dense, lin.out, lin.in, cuda.BF16T), Y: cuda.M(y, rows, lin.out, cuda.BF16T)}
	if lin.nf4 != nil {
		if err := ops.DequantNF4(g.d, lin.nf4, g.w.scratch); err != nil {
			return fmt.Errorf("%s: %w", lin.name, err)
		}
		l.W = cuda.M(g.w.scratch, lin.out, lin.in, cuda.BF16T)
	}
	if lin.bias.Bytes != 0 {
		l.Bias, l.Ones = cuda.M(lin.bias, 1, lin.out, cuda.BF16T), cuda.M(g.ones, rows, 1, cuda.BF16T)
	}
	if lin.a.Bytes != 0 {
		l.A, l.B = cuda.M(lin.a, lin.rank, lin.in, cuda.BF16T), cuda.M(lin.b, lin.out, lin.rank, cuda.BF16T)
		l.H, l.Scale = cuda.M(g.loraH, rows, lin.rank, cuda.BF16T), lin.scale
	}
	if err := ops.Linear(g.d, g.blas, l); err != nil {
		return fmt.Errorf("%s: %w", lin.name, err)
	}
	return nil
}

// forward runs the model definition (model.Forward over devOps) on rows tokens (ids, positions, slots and
// lm_head's rows already in meta), appending each row's key and value to its cache (rows at position −1
// append nothing); attend computes a layer's attention output (g.attn) from g.q and the caches. lm_head reads
// the heads rows of the final hidden states listed in meta (prefill), or every row when heads is 0 (steps),
// and leaves their logits [heads or rows, V] fp32 in g.logits.
func (g *decoder) forward(rows int, attend func(l int) error, heads int) error {
	o := &devOps{g: g, rows: rows, attend: attend, heads: heads}
	if g.prof != nil && heads == 0 { // a profiled step: each op between two events, all on the main stream
		if _, err := model.Forward[cuda.Buffer](&timedOps{inner: o, d: g.d, p: g.prof}, g.w.w); err != nil {
			return err
		}
		return g.prof.collect()
	}
	if g.pdl {
		g.d.PDL = true
		defer func() { g.d.PDL = false }()
	}
	if g.overlap {
		if g.ov == nil {
			ov, err := newOverlap(g.d)
			if err != nil {
				return err
			}
			g.ov = ov
		}
		o.ov, o.fs.pending = g.ov, map[cuda.Buffer]int{}
	}
	if _, err := model.Forward[cuda.Buffer](o, g.w.w); err != nil {
		return err
	}
	if err := o.flush(); err != nil {
		return err
	}
	if o.ov != nil {
		return o.fs.joinAll(g.d, o.ov)
	}
	return nil
}

// upload puts the rows' ids, positions and slots, and the rows lm_head reads (last; nil for every row), into
// meta, after checking them. With last (prefill), position −1 marks a padding row: no key or value is cached.
func (g *decoder) upload(ids, pos, slots, last []int32) error {
	V, lo := int32(g.w.w.Config.VocabSize), int32(0)
	if last != nil {
		lo = -1
	}
	for r := range ids {
		switch {
		case ids[r] < 0 || ids[r] >= V:
			return fmt.Errorf("gpu: decoder: token id %d outside the vocabulary [0, %d)", ids[r], V)
		case pos[r] < lo || int(pos[r]) >= g.dims.Cap:
			return fmt.Errorf("gpu: decoder: position %d outside the cache [%d, %d)", pos[r], lo, g.dims.Cap)
		case slots[r] < 0 || int(slots[r]) >= g.dims.Slots:
			return fmt.Errorf("gpu: decoder: sequence %d outside [0, %d)", slots[r], g.dims.Slots)
		}
	}
	for _, r := range last {
		if r < 0 || int(r) >= len(ids) || pos[r] < 0 {
			return fmt.Errorf("gpu: decoder: lm_head row %d is not a token of the %d rows", r, len(ids))
		}
	}
	meta := make([]int32, 0, 3*len(ids)+len(last))
	meta = append(append(append(append(meta, ids...), pos...), slots...), last...)
	return cuda.Upload(g.d, g.meta, meta)
}

// choose takes the argmax of the logits of sequences seqs (g.logits, left by forward) and downloads the ids.
func (g *decoder) choose(seqs []int32) ([]int32, error) {
	n := len(seqs)
	if g.onLogits != nil {
		if err := g.onLogits(seqs, g.logits, n); err != nil {
			return nil, err
		}
	}
	if g.keep {
		rows := make([]float32, n*g.w.w.Config.VocabSize) // [n, V]
		if err := cuda.Download(g.d, rows, g.logits); err != nil {
			return nil, fmt.Errorf("gpu: decoder: logits: %w", err)
		}
		g.kept = append(g.kept, rows...)
	}
	if err := ops.ArgmaxF32(g.d, g.next, g.logits, n, g.w.w.Config.VocabSize); err != nil {
		return nil, err
	}
	out := make([]int32, n)
	if err := cuda.Download(g.d, out, g.next); err != nil {
		return nil, fmt.Errorf("gpu: decoder: %w", err)
	}
	return out, nil
}

// prefillGroup is the prompts of one prefill forward (indices into Prefill's prompts), right-padded to T
// tokens each, the longest one's length.
type prefillGroup struct {
	idx []int
	T   int
}

// planPrefill groups prompts of lengths lens into as few forwards of at most rows tokens (padding counted)
// as a greedy fill allows: longest first (stable among equal lengths), each group padded to its first
// prompt's length, so the padding is only the length differences of neighbours in that order. A prompt
// longer than rows gets a group of its own.
func planPrefill(lens []int, rows int) []prefillGroup {
	order := make([]int, len(lens))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return lens[b] - lens[a] })
	var groups []prefillGroup
	for k := 0; k < len(order); {
		T, n := lens[order[k]], 1
		for k+n < len(order) && (n+1)*T <= rows {
			n++
		}
		groups = append(groups, prefillGroup{idx: order[k : k+n], T: T})
		k += n
	}
	return groups
}

// Prefill runs prompts[i] into slot slotOf[i] (model.DecodeSteps), prompts of any lengths together
// (planPrefill: up to g.rows tokens per forward). A group of B prompts is right-padded to its longest, T
// tokens: prompt b's token t is row b·T + t at position t. Attention is the causal flash forward over [B, T],
// so a prompt's real rows see only its own earlier rows, never padding (which comes after them); padding rows
// take token 0 at position −1, which kv_append skips, so only real rows' keys and values enter the caches.
// lm_head reads each prompt's last real row, b·T + len−1 (gathered, see devOps.LMHead).
//
// A prompt that shares at least reuseMin leading tokens with what a cache holds (planReuse: a slot this call
// does not write, its own, or that of an earlier prompt of this call computed whole) computes only the rest:
// the shared keys and values are copied into its slot (prefixCopy) and its remaining tokens run as rows that
// attend to their slot's cache (prefillSuffixes). Evaluation prompts share the system prompt and often a
// whole schema, so most of their tokens are reused.
func (g *decoder) Prefill(slotOf []int32, prompts [][]int32) ([]int32, error) {
	if len(slotOf) != len(prompts) || len(prompts) > g.dims.Slots {
		return nil, fmt.Errorf("gpu: decoder: %d slots for %d prompts (at most %d)", len(slotOf), len(prompts), g.dims.Slots)
	}
	lens := make([]int, len(prompts))
	for i, s := range slotOf {
		if s < 0 || int(s) >= g.dims.Slots {
			return nil, fmt.Errorf("gpu: decoder: prompt %d: slot %d outside 0..%d", i, s, g.dims.Slots-1)
		}
		if lens[i] = len(prompts[i]); lens[i] == 0 {
			return nil, fmt.Errorf("gpu: decoder: prompt %d is empty", i)
		}
	}
	c := g.w.w.Config
	next := make([]int32, len(prompts))
	var order []int // the prompts in the order their logits were kept (sampling)
	minKeep := cmp.Or(g.reuseMin, defaultReuseMin)
	if g.reuseMin < 0 {
		minKeep = math.MaxInt // reuse nothing
	}
	plans := planReuse(g.cached, slotOf, prompts, minKeep)
	var whole, reused []int // prompt indices
	for i, p := range plans {
		if p.donor < 0 {
			whole = append(whole, i)
			continue
		}
		reused = append(reused, i)
		g.reused += p.keep
	}
	for _, n := range lens {
		g.prompted += n
	}
	wholeLens := make([]int, len(whole))
	for k, i := range whole {
		wholeLens[k] = lens[i]
	}
	for _, grp := range planPrefill(wholeLens, g.rows) {
		for k, j := range grp.idx {
			grp.idx[k] = whole[j]
		}
		B, T := len(grp.idx), grp.T
		rows := B * T
		ids, pos, slots := make([]int32, rows), make([]int32, rows), make([]int32, rows) // [B·T], padding id 0
		last, seqs := make([]int32, B), make([]int32, B)                                 // [B]
		for b, i := range grp.idx {
			seqs[b], last[b] = slotOf[i], int32(b*T+lens[i]-1)
			for t := range T {
				r := b*T + t
				slots[r], pos[r] = slotOf[i], -1
				if t < lens[i] {
					ids[r], pos[r] = prompts[i][t], int32(t)
				}
			}
		}
		what := fmt.Sprintf("gpu: prefill of %d prompts padded to %d tokens (first: prompt %d)", B, T, grp.idx[0])
		if err := g.upload(ids, pos, slots, last); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		ad := ops.AttnDims{B: B, T: T, H: c.NumHeads, KVH: c.NumKVHeads, D: c.HeadDim, Scale: g.dims.Scale}
		attend := func(int) error { return ops.AttentionForward(g.d, g.attn, g.lse, g.q, g.k, g.v, cuda.Buffer{}, ad) }
		if err := g.forward(rows, attend, B); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		got, err := g.choose(seqs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		for b, i := range grp.idx {
			next[i] = got[b]
		}
		order = append(order, grp.idx...)
	}
	// The donors now hold what the plans read: leaders were computed above, other slots are untouched.
	for _, i := range reused {
		if p := plans[i]; p.donor != slotOf[i] {
			if err := g.prefixCopy(p.donor, slotOf[i], p.keep); err != nil {
				return nil, err
			}
		}
	}
	if err := g.prefillSuffixes(reused, plans, slotOf, prompts, next, &order); err != nil {
		return nil, err
	}
	if g.cached != nil {
		for i, s := range slotOf {
			g.cached[s] = slices.Clone(prompts[i])
		}
	}
	if g.keep { // choose kept the logits rows [len(prompts), V] in the groups' order: put them in the prompts'
		V := c.VocabSize
		kept := make([]float32, len(g.kept))
		for k, i := range order {
			copy(kept[i*V:(i+1)*V], g.kept[k*V:(k+1)*V])
		}
		g.kept = kept
	}
	return next, nil
}

// step feeds one token per live sequence, all rows in one forward (decode attention against each cache).
func (g *decoder) Step(seqs, ids, pos []int32) ([]int32, error) {
	rows := len(seqs)
	if rows == 0 || rows > g.rows {
		return nil, fmt.Errorf("gpu: decoder: step of %d rows (at most %d)", rows, g.rows)
	}
	if err := g.upload(ids, pos, seqs, nil); err != nil {
		return nil, err
	}
	slots, p := g.meta.Slice(int64(rows)*8, int64(rows)*4), g.meta.Slice(int64(rows)*4, int64(rows)*4)
	attend := func(l int) error {
		return ops.DecodeAttentionSplit(g.d, g.attn, g.q, g.kc[l], g.vc[l], slots, p, g.part, rows, g.dims)
	}
	run := func() error { return g.forward(rows, attend, 0) }
	var err error
	if g.prof != nil { // events cannot be timed inside a graph: profiled steps run eagerly
		err = run()
	} else {
		err = g.steps.run(g.d, rows, run)
	}
	if err != nil {
		return nil, fmt.Errorf("gpu: decode step: %w", err)
	}
	g.noteStep(seqs, ids, pos)
	got, err := g.choose(seqs)
	if err != nil {
		return nil, fmt.Errorf("gpu: decode step: %w", err)
	}
	return got, nil
}
