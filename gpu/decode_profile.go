//go:build t2mcuda

package gpu

import (
	"strings"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/model"
)

// decodeProfile times a decoder's steps op by op with device events (gpuGenerator.SetProfile): where the time
// of a decode step goes, measured on the device. Prefill forwards are not timed.
type decodeProfile struct {
	pending []timedOp
	ms      map[string]float64 // device milliseconds by kind, summed over the profiled steps
	calls   map[string]int     // ops timed by kind, over the profiled steps
	steps   int
}

type timedOp struct {
	kind       string
	start, end *cuda.Event
}

// collect waits for the step's events and adds their times, plus "step span" (first event to last: the
// ops' time and the gaps between their launches).
func (p *decodeProfile) collect() error {
	defer func() { p.pending = p.pending[:0] }()
	if len(p.pending) == 0 {
		return nil
	}
	first, last := p.pending[0].start, p.pending[len(p.pending)-1].end
	span, err := first.Span(last)
	if err != nil {
		return err
	}
	for _, t := range p.pending {
		ms, err := t.start.Millis(t.end)
		if err != nil {
			return err
		}
		p.ms[t.kind] += ms
		p.calls[t.kind]++
	}
	p.ms["step span"] += span
	p.steps++
	return nil
}

// timedOps runs each op of inner (the decoder's devOps) between two events recorded on d's stream.
type timedOps struct {
	inner model.Ops[cuda.Buffer]
	d     *cuda.Device
	p     *decodeProfile
}

// time runs f between two recorded events, counted under kind.
func (t *timedOps) time(kind string, f func() (cuda.Buffer, error)) (cuda.Buffer, error) {
	start, err := t.d.Record()
	if err != nil {
		return cuda.Buffer{}, err
	}
	y, err := f()
	if err != nil {
		return y, err
	}
	end, err := t.d.Record()
	if err != nil {
		return y, err
	}
	t.p.pending = append(t.p.pending, timedOp{kind, start, end})
	return y, nil
}

// projectionKind names a projection by the last element of its module path (q_proj, down_proj, ...).
func projectionKind(module string) string {
	return module[strings.LastIndexByte(module, '.')+1:]
}

// Embed implements model.Ops.
func (t *timedOps) Embed(name string, table *model.Frozen) (cuda.Buffer, error) {
	return t.time("embed", func() (cuda.Buffer, error) { return t.inner.Embed(name, table) })
}

// RMSNorm implements model.Ops.
func (t *timedOps) RMSNorm(name string, w []float32, x cuda.Buffer, eps float32) (cuda.Buffer, error) {
	return t.time("rmsnorm", func() (cuda.Buffer, error) { return t.inner.RMSNorm(name, w, x, eps) })
}

// Linear implements model.Ops. The projection is launched inside its own timed region: a GEMV the decoder
// would defer to the next op (devOps.launch, to fuse the residual add) is launched at once, so its time is not
// counted under the op after it; a profiled step therefore adds the residual separately.
func (t *timedOps) Linear(p *model.Projection, x cuda.Buffer) (cuda.Buffer, error) {
	return t.time(projectionKind(p.Module), func() (cuda.Buffer, error) {
		y, err := t.inner.Linear(p, x)
		if o, ok := t.inner.(*devOps); ok && err == nil {
			err = o.flush()
		}
		return y, err
	})
}

// RoPE implements model.Ops.
func (t *timedOps) RoPE(name string, x cuda.Buffer, heads, headDim int, theta float32) (cuda.Buffer, error) {
	return t.time("rope", func() (cuda.Buffer, error) { return t.inner.RoPE(name, x, heads, headDim, theta) })
}

// Attention implements model.Ops (the cache append and decode attention).
func (t *timedOps) Attention(name string, layer int, q, k, v cuda.Buffer) (cuda.Buffer, error) {
	return t.time("attention", func() (cuda.Buffer, error) { return t.inner.Attention(name, layer, q, k, v) })
}

// Add implements model.Ops.
func (t *timedOps) Add(name string, x, y cuda.Buffer) (cuda.Buffer, error) {
	return t.time("add", func() (cuda.Buffer, error) { return t.inner.Add(name, x, y) })
}

// SwiGLU implements model.Ops.
func (t *timedOps) SwiGLU(name string, gate, up cuda.Buffer) (cuda.Buffer, error) {
	return t.time("swiglu", func() (cuda.Buffer, error) { return t.inner.SwiGLU(name, gate, up) })
}

// HeadRows implements model.Ops (the inner executor's rows, untimed: the decoder keeps every row).
func (t *timedOps) HeadRows(name string, x cuda.Buffer) (cuda.Buffer, error) {
	return t.inner.HeadRows(name, x)
}

// Hidden implements model.Ops.
func (t *timedOps) Hidden(x cuda.Buffer) { t.inner.Hidden(x) }

// LMHead implements model.Ops (lm_head on the step's rows and, in the decoder, nothing else).
func (t *timedOps) LMHead(w *model.Frozen, x cuda.Buffer) (cuda.Buffer, error) {
	return t.time("lm_head", func() (cuda.Buffer, error) { return t.inner.LMHead(w, x) })
}

// SetProfile turns the timing of decode steps op by op on or off (and clears what was timed). While on,
// steps run eagerly (no CUDA graphs, side streams or dependent launches, residual adds apart from the GEMVs)
// with two events around each op, which adds host time between launches; each op's device time stays its kernels'.
func (g *gpuGenerator) SetProfile(on bool) {
	g.dec.prof = nil
	if on {
		g.dec.prof = &decodeProfile{ms: map[string]float64{}, calls: map[string]int{}}
	}
}

// Profile returns the device milliseconds per decode step by kind of op (the projections by module name,
// "attention" for the cache append and decode attention, "lm_head", ...; "step span" from the first op's
// start to the last one's end), and the number of steps timed.
func (g *gpuGenerator) Profile() (map[string]float64, int) {
	p := g.dec.prof
	if p == nil || p.steps == 0 {
		return nil, 0
	}
	out := make(map[string]float64, len(p.ms))
	for k, v := range p.ms {
		out[k] = v / float64(p.steps)
	}
	return out, p.steps
}
