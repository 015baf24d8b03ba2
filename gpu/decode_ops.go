//go:build t2mcuda

package gpu

import (
	"fmt"
	"os"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/ops"
	"github.com/t2m/t2m/model"
)

// devOps is the decoder as an executor of the model definition (model.Ops over device buffers) for one
// forward of rows tokens. Activations live in the decoder's buffers: the residual stream in x, norms in h,
// each projection's output in the buffer of its role (q, k, v, attn, tmp, gate, up); adds, RoPE and SwiGLU
// work in place. Weights are the device copies in decodeWeights, found by the names Forward passes.
type devOps struct {
	g      *decoder
	rows   int
	attend func(l int) error // layer l's attention into g.attn from g.q and the caches
	heads  int               // lm_head reads the heads rows listed in meta (prefill), or every row if 0 (steps)
	full   int               // the forward's rows before HeadRows gathered the heads rows (0: not gathered)
	table  bool              // the RoPE table of this forward's positions is made
	ov     *overlap          // side streams for projections beside the previous one on the same input, or nil
	fs     forkState         // this forward's use of them
	pend   *deferred         // the projection waiting, or nil
}

// decodeFuseAdd says whether a residual add is done by the NF4 GEMV of the projection it adds (devOps.Add):
// yes unless T2M_GPU_FUSE_ADD=0, which keeps the separate add (for an A/B; gpu/DECODE_NOTES.md has the numbers).
func decodeFuseAdd() bool { return os.Getenv("T2M_GPU_FUSE_ADD") != "0" }

// decodeHeadRows says whether a prefill gathers the rows lm_head reads before the last layer's o projection
// (devOps.HeadRows): yes unless T2M_HEAD_ROWS=0 (model.HeadRowsEnv), which also keeps training on every row.
func decodeHeadRows() bool { return os.Getenv(model.HeadRowsEnv) != "0" }

// decodePDL says whether the decoder's forwards use programmatic dependent launch (cuda.Device.PDL): yes unless
// T2M_GPU_PDL=0 (for an A/B; gpu/DECODE_NOTES.md has the numbers).
func decodePDL() bool { return os.Getenv("T2M_GPU_PDL") != "0" }

// deferred is a projection whose launch waits for the next op: when that op adds the projection's output into
// the residual stream (o_proj and down_proj), the GEMV adds into the residual itself (beta 1: one launch and one
// rounding instead of a GEMV, an add and two roundings); before any other op it runs as it would have.
type deferred struct {
	lin  *decodeLinear
	x, y cuda.Buffer
}

// flush launches the deferred projection, if any, as it was asked for.
func (o *devOps) flush() error {
	p := o.pend
	if p == nil {
		return nil
	}
	o.pend = nil
	return o.g.linear(p.lin, p.x, p.y, o.rows)
}

// launch runs lin on the main stream, or defers it when the decoder fuses adds and lin is one NF4 GEMV (see
// deferred).
func (o *devOps) launch(lin *decodeLinear, x, y cuda.Buffer) error {
	if o.g.fuseAdd && o.g.gemv(lin, o.rows) {
		o.pend = &deferred{lin: lin, x: x, y: y}
		return nil
	}
	return o.g.linear(lin, x, y, o.rows)
}

// sync prepares an op other than Linear on the main stream: it launches a deferred projection, ends the
// current group of projections, and the main stream waits for every side stream (the op may read their
// outputs or rewrite their input). The first such op comes after all of a group's projections were launched
// (RoPE after q, k, v; SwiGLU after gate, up), so they still overlap.
func (o *devOps) sync() error {
	if err := o.flush(); err != nil {
		return err
	}
	if o.ov == nil {
		return nil
	}
	o.fs.input = cuda.Buffer{}
	return o.fs.joinAll(o.g.d, o.ov)
}

// tokens is the number of tokens of the forward: its rows, also after HeadRows has narrowed them to the heads.
func (o *devOps) tokens() int {
	if o.full > 0 {
		return o.full
	}
	return o.rows
}

// meta returns the tokens' ids, positions and slots [tokens] int32 (uploaded by decoder.upload).
func (o *devOps) meta() (ids, pos, slots cuda.Buffer) {
	r := int64(o.tokens()) * 4
	return o.g.meta.Slice(0, r), o.g.meta.Slice(r, r), o.g.meta.Slice(2*r, r)
}

// headRows returns the rows lm_head reads [heads] int32, uploaded after the slots.
func (o *devOps) headRows() cuda.Buffer {
	return o.g.meta.Slice(3*int64(o.tokens())*4, int64(o.heads)*4)
}

// Embed looks the ids up into g.x [rows, H].
func (o *devOps) Embed(name string, _ *model.Frozen) (cuda.Buffer, error) {
	g, c := o.g, o.g.w.w.Config
	if err := o.sync(); err != nil {
		return cuda.Buffer{}, err
	}
	tab, err := g.w.vec(name)
	if err != nil {
		return cuda.Buffer{}, err
	}
	ids, _, _ := o.meta()
	if err := ops.EmbeddingForward(g.d, g.x, tab, ids, cuda.Buffer{}, o.rows, c.VocabSize, c.HiddenSize); err != nil {
		return cuda.Buffer{}, err
	}
	return g.x, nil
}

// RMSNorm writes g.h [rows, H].
func (o *devOps) RMSNorm(name string, _ []float32, x cuda.Buffer, eps float32) (cuda.Buffer, error) {
	g := o.g
	if err := o.sync(); err != nil {
		return cuda.Buffer{}, err
	}
	w, err := g.w.vec(name)
	if err != nil {
		return cuda.Buffer{}, err
	}
	if err := ops.RMSNormForward(g.d, g.h, x, w, o.rows, g.w.w.Config.HiddenSize, eps); err != nil {
		return cuda.Buffer{}, err
	}
	return g.h, nil
}

// Linear writes p's output into the buffer of its role.
func (o *devOps) Linear(p *model.Projection, x cuda.Buffer) (cuda.Buffer, error) {
	g := o.g
	lin, err := g.w.linear(p)
	if err != nil {
		return cuda.Buffer{}, err
	}
	y, ok := g.outs[p.Module]
	if !ok {
		return cuda.Buffer{}, fmt.Errorf("gpu: decoder: no output buffer for %s", p.Module)
	}
	if err := o.flush(); err != nil {
		return cuda.Buffer{}, err
	}
	if o.ov == nil {
		return y, o.launch(lin, x, y)
	}
	// A projection of the current group's input runs on a free side stream when it is one NF4 GEMV without an
	// adapter kept apart (those use the shared scratch, h buffer and cuBLAS handle of the main stream).
	if x == o.fs.input && o.fs.used < overlapStreams && !o.fs.dequant && g.gemv(lin, o.rows) && lin.a.Bytes == 0 {
		i := o.fs.used
		o.fs.used++
		s := o.ov.side[i]
		if err := o.ov.fork.Wait(s); err != nil {
			return cuda.Buffer{}, err
		}
		if err := g.linearOn(s, i+1, lin, x, y, o.rows, 0); err != nil {
			return cuda.Buffer{}, err
		}
		o.fs.pending[y] = i
		o.ov.runs++
		return y, o.ov.done[i].Record(s)
	}
	if x != o.fs.input { // the main stream never writes a buffer a side stream still reads or writes: sync joined
		if err := o.fs.joinAll(g.d, o.ov); err != nil {
			return cuda.Buffer{}, err
		}
		if err := o.ov.fork.Record(g.d.Stream); err != nil { // the side streams of its later projections start here
			return cuda.Buffer{}, err
		}
		o.fs.input, o.fs.used = x, 0
		o.fs.dequant = lin.nf4 != nil && !g.gemv(lin, o.rows)
	} else if lin.nf4 != nil && !g.gemv(lin, o.rows) { // it writes the whole scratch: the side streams are done first
		if err := o.fs.joinAll(g.d, o.ov); err != nil {
			return cuda.Buffer{}, err
		}
		o.fs.dequant = true
	}
	return y, o.launch(lin, x, y)
}

// RoPE rotates x in place with the table of this forward's positions (made by the first call).
func (o *devOps) RoPE(_ string, x cuda.Buffer, heads, headDim int, theta float32) (cuda.Buffer, error) {
	g := o.g
	if err := o.sync(); err != nil {
		return cuda.Buffer{}, err
	}
	if !o.table {
		_, pos, _ := o.meta()
		if err := ops.RoPETable(g.d, g.cs, pos, o.rows, headDim, theta); err != nil {
			return cuda.Buffer{}, err
		}
		o.table = true
	}
	if err := ops.RoPEApply(g.d, x, x, g.cs, o.rows, heads, headDim, false); err != nil {
		return cuda.Buffer{}, err
	}
	return x, nil
}

// Attention appends k and v to the layer's caches, then attends (o.attend) into g.attn.
func (o *devOps) Attention(_ string, layer int, q, k, v cuda.Buffer) (cuda.Buffer, error) {
	g := o.g
	if q != g.q {
		return cuda.Buffer{}, fmt.Errorf("gpu: decoder: attention reads q from its own buffer")
	}
	if err := o.sync(); err != nil {
		return cuda.Buffer{}, err
	}
	_, pos, slots := o.meta()
	if err := ops.KVAppend(g.d, g.kc[layer], g.vc[layer], k, v, slots, pos, o.rows, g.dims); err != nil {
		return cuda.Buffer{}, err
	}
	if err := o.attend(layer); err != nil {
		return cuda.Buffer{}, err
	}
	return g.attn, nil
}

// Add adds y into x [rows, H]: when y is the deferred projection's output, that GEMV adds into x instead.
func (o *devOps) Add(_ string, x, y cuda.Buffer) (cuda.Buffer, error) {
	if p := o.pend; p != nil && p.y == y {
		o.pend = nil
		if err := o.sync(); err != nil {
			return cuda.Buffer{}, err
		}
		o.g.fusedAdds++
		return x, o.g.linearOn(o.g.d.Stream, 0, p.lin, p.x, x, o.rows, 1)
	}
	if err := o.sync(); err != nil {
		return cuda.Buffer{}, err
	}
	if err := ops.AddBF16(o.g.d, x, x, y, o.rows*o.g.w.w.Config.HiddenSize); err != nil {
		return cuda.Buffer{}, err
	}
	return x, nil
}

// SwiGLU writes silu(gate)·up into gate [rows, I].
func (o *devOps) SwiGLU(_ string, gate, up cuda.Buffer) (cuda.Buffer, error) {
	if err := o.sync(); err != nil {
		return cuda.Buffer{}, err
	}
	if err := ops.SwiGLUForward(o.g.d, gate, gate, up, o.rows*o.g.w.w.Config.IntermediateSize); err != nil {
		return cuda.Buffer{}, err
	}
	return gate, nil
}

// HeadRows, in a prefill (heads > 0), gathers x's heads rows listed in meta (the rows lm_head reads: each
// prompt's last) to the leading rows, and the forward goes on over those rows alone: everything after the last
// layer's attention is row-wise, so the o projection, the MLP and the final norm of the other rows would only
// be dropped by LMHead. The model definition calls it on the attention output (gathered into g.q, free once
// attention has read it) and on the residual g.x (gathered through g.h, free once q, k and v are made, and
// copied back). A step (every row is a head) keeps x, as does T2M_HEAD_ROWS=0.
func (o *devOps) HeadRows(_ string, x cuda.Buffer) (cuda.Buffer, error) {
	g, c := o.g, o.g.w.w.Config
	if o.heads == 0 || !g.headRows {
		return x, nil
	}
	if err := o.sync(); err != nil {
		return cuda.Buffer{}, err
	}
	if o.full == 0 {
		o.full = o.rows
	}
	o.rows = o.heads
	dst, width := g.q, c.NumHeads*c.HeadDim // [heads, Hq·D] of the attention output
	if x == g.x {
		dst, width = g.h, c.HiddenSize // [heads, H] of the residual
	} else if x == g.q {
		return cuda.Buffer{}, fmt.Errorf("gpu: decoder: head rows of g.q, the attention output's gather buffer")
	}
	if err := ops.GatherRows(g.d, dst, x, o.headRows(), o.heads, o.full, width); err != nil {
		return cuda.Buffer{}, fmt.Errorf("head rows: %w", err)
	}
	if x != g.x {
		return dst, nil
	}
	n := int64(o.heads) * int64(width) * 2
	if err := g.d.Copy(g.x.Slice(0, n), dst.Slice(0, n)); err != nil {
		return cuda.Buffer{}, fmt.Errorf("head rows: %w", err)
	}
	return g.x, nil
}

// Hidden keeps nothing.
func (o *devOps) Hidden(cuda.Buffer) {}

// LMHead writes the logits [n, V] fp32 of x's rows [rows, H] into g.logits: every row (n = rows: a step, or
// a prefill whose HeadRows gathered the heads rows), or the heads rows listed in meta (n = heads), first
// gathered into g.tmp [heads, H] (free after the last layer's add) by the embedding lookup with x as the table
// (a row gather, exact).
func (o *devOps) LMHead(_ *model.Frozen, x cuda.Buffer) (cuda.Buffer, error) {
	if err := o.sync(); err != nil {
		return cuda.Buffer{}, err
	}
	g, c := o.g, o.g.w.w.Config
	n := o.rows
	if o.heads > 0 && o.full == 0 { // not gathered by HeadRows
		n = o.heads
		if err := ops.EmbeddingForward(g.d, g.tmp, x, o.headRows(), cuda.Buffer{}, n, o.rows, c.HiddenSize); err != nil {
			return cuda.Buffer{}, fmt.Errorf("lm_head rows: %w", err)
		}
		x = g.tmp
	}
	X, W := cuda.M(x, n, c.HiddenSize, cuda.BF16T), cuda.M(g.w.lmHead, c.VocabSize, c.HiddenSize, cuda.BF16T)
	if err := g.blas.Linear(X, W, 0, cuda.M(g.logits, n, c.VocabSize, cuda.F32T)); err != nil {
		return cuda.Buffer{}, fmt.Errorf("lm_head: %w", err)
	}
	return g.logits, nil
}
