//go:build t2mcuda

package gpu

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"testing"
)

// TestOpTimes7B times each op kernel of this package at the Qwen2.5-Coder-7B training shape (B=4, T=512,
// hidden 3584, 28 heads, 4 KV heads, head dim 128, intermediate 18944, vocab 152064, LoRA r=8 ≈ 15.1M
// parameters) on random data: 3 warm-up runs, then the median of 20 timed with device events. It is a
// measurement, not a check, so it runs only with T2M_OP_TIMES=1; the table goes to the test log.
func TestOpTimes7B(t *testing.T) {
	if os.Getenv("T2M_OP_TIMES") != "1" {
		t.Skip("set T2M_OP_TIMES=1 to time the op kernels at the 7B shape")
	}
	d := device(t)
	const (
		B, T, C, NH, KVH, D, I, V = 4, 512, 3584, 28, 4, 128, 18944, 152064
		N                         = B * T
		lora                      = 15_138_816
	)
	a := arena(t, d, 6<<30)
	seed := uint64(1)
	rnd := func(elems int64, scale float32) Buffer { // bf16 [elems] uniform in [-scale, scale)
		b, err := a.Alloc(elems*2, "bf16")
		if err != nil {
			t.Fatal(err)
		}
		seed++
		if err := d.FillRandomBF16(b, elems, seed, scale); err != nil {
			t.Fatal(err)
		}
		return b
	}
	out := func(bytes int64) Buffer {
		b, err := a.Alloc(bytes, "out")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rng := rand.New(rand.NewPCG(10, 10))
	f32 := func(n int, lo, hi float32) Buffer { return ktUp(t, d, a, ktRand(rng, n, lo, hi)) }

	type row struct {
		name  string
		ms    float64
		bytes float64 // fewest bytes moved (each input read once, each output written once)
		flops float64
	}
	var rows []row
	timeIt := func(name string, bytes, flops float64, f func() error) {
		var ms []float64
		for i := range 23 {
			start, err := d.Record()
			if err != nil {
				t.Fatal(err)
			}
			if err := f(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			end, err := d.Record()
			if err != nil {
				t.Fatal(err)
			}
			m, err := start.Millis(end)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if i >= 3 {
				ms = append(ms, m)
			}
		}
		sort.Float64s(ms)
		rows = append(rows, row{name, ms[len(ms)/2], bytes, flops})
	}

	x, w, dy := rnd(N*C, 2), rnd(C, 1), rnd(N*C, 1)
	y := out(N * C * 2)
	timeIt("rmsnorm fwd [2048,3584]", 2*N*C*2, 0, func() error { return RMSNormForward(d, y, x, w, N, C, 1e-6) })
	timeIt("rmsnorm bwd [2048,3584]", 3*N*C*2, 0, func() error { return RMSNormBackward(d, y, dy, x, w, N, C, 1e-6) })

	pos := make([]int32, N)
	for i := range pos {
		pos[i] = int32(i % T)
	}
	bpos := ktUp(t, d, a, pos)
	q := rnd(N*NH*D, 2)
	timeIt("rope q fwd [2048,28x128]", 2*N*NH*D*2, 0, func() error { return RoPE(d, q, q, bpos, N, NH, D, 1e6, false) })
	cs := out(RoPETableBytes(N, D))
	timeIt("rope table [2048,64] (once per step)", N*D/2*8, 0, func() error { return RoPETable(d, cs, bpos, N, D, 1e6) })
	timeIt("rope apply q [2048,28x128]", 2*N*NH*D*2, 0, func() error { return RoPEApply(d, q, q, cs, N, NH, D, false) })

	k, v, do := rnd(N*KVH*D, 2), rnd(N*KVH*D, 1), rnd(N*NH*D, 1)
	mask := make([]int32, N)
	for i := range mask {
		mask[i] = 1
	}
	bmask := ktUp(t, d, a, mask)
	dims := AttnDims{B: B, T: T, H: NH, KVH: KVH, D: D, Scale: 1 / float32(11.313708498984761)}
	o, lse := out(N*NH*D*2), out(dims.lseBytes())
	attnFlops := 4.0 * B * NH * T * T * D / 2 // causal: half of QKᵀ and PV
	timeIt("attention fwd B4 T512 H28/4 D128", float64(3*N*NH*D*2), attnFlops,
		func() error { return AttentionForward(d, o, lse, q, k, v, bmask, dims) })
	scratch := out(AttentionBackwardScratchBytes(dims))
	dq, dk, dv := out(N*NH*D*2), out(N*KVH*D*2), out(N*KVH*D*2)
	defer func(v bool) { attnSplitDQ = v }(attnSplitDQ)
	for _, split := range []bool{false, true} {
		attnSplitDQ = split
		name := map[bool]string{false: "attention bwd, one walk (dQ atomics)", true: "attention bwd, split dQ"}[split]
		timeIt(name, float64(6*N*NH*D*2), 2.5*attnFlops,
			func() error { return AttentionBackward(d, dq, dk, dv, q, k, v, o, do, lse, bmask, scratch, dims) })
	}
	timeIt("attention fwd, no mask buffer", float64(3*N*NH*D*2), attnFlops,
		func() error { return AttentionForward(d, o, lse, q, k, v, Buffer{}, dims) })

	gate, up, dh := rnd(N*I, 4), rnd(N*I, 2), rnd(N*I, 1)
	h, dg, du := out(N*I*2), out(N*I*2), out(N*I*2)
	timeIt("swiglu fwd [2048,18944]", 3*N*I*2, 0, func() error { return SwiGLUForward(d, h, gate, up, N*I) })
	timeIt("swiglu bwd [2048,18944]", 5*N*I*2, 0, func() error { return SwiGLUBackward(d, dg, du, dh, gate, up, N*I) })
	timeIt("residual add bf16 [2048,3584]", 3*N*C*2, 0, func() error { return AddBF16(d, y, x, dy, N*C) })

	table := rnd(V*C, 1)
	ids := make([]int32, N)
	for i := range ids {
		ids[i] = int32(rng.IntN(V))
	}
	bids := ktUp(t, d, a, ids)
	timeIt("embedding [2048] of [152064,3584]", 2*N*C*2, 0,
		func() error { return EmbeddingForward(d, y, table, bids, Buffer{}, N, V, C) })

	labels := make([]int32, N)
	for i := range labels {
		labels[i] = -100
		if i%T >= T*7/10 { // loss on the last 30% of each sequence, as the benchmark does
			labels[i] = int32(rng.IntN(V))
		}
	}
	blab := ktUp(t, d, a, labels)
	targets := 0
	for i := range labels {
		if i%T != T-1 && labels[i+1] != -100 {
			targets++
		}
	}
	for _, cs := range []struct{ chunk, targets int }{{512, 0}, {2048, 0}, {2048, targets}} {
		chunk := cs.chunk
		c := CEDims{B: B, T: T, Hidden: C, Vocab: V, IgnoreIndex: -100, Chunk: chunk, Targets: cs.targets}
		mark := a.Mark()
		ceScratch := out(LMHeadCrossEntropyScratchBytes(c))
		loss := out(4)
		name, rowsDone := fmt.Sprintf("lm_head+CE fwd+bwd, chunk %d", chunk), N
		if cs.targets > 0 {
			rowsDone = cs.targets
			name = fmt.Sprintf("lm_head+CE, %d target rows gathered", rowsDone)
		}
		timeIt(name, float64(V*C*2+2*N*C*2), 4.0*float64(rowsDone)*C*V,
			func() error { return LMHeadCrossEntropy(d, loss, y, x, table, blab, Buffer{}, ceScratch, c, 600, 1) })
		a.Release(mark)
	}

	p, m, vv, g := f32(lora, -1, 1), f32(lora, -1e-3, 1e-3), f32(lora, 0, 1e-6), f32(lora, -1e-3, 1e-3)
	pb, gn := out(lora*2), out(8)
	gnScratch := out(GradNormScratchBytes())
	timeIt("grad norm + clip factor, 15.1M", lora*4, 0, func() error { return GradNormClip(d, gn, g, gnScratch, lora, 1) })
	hyper := AdamWHyper{LR: 2e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0}
	timeIt("adamw 15.1M (+bf16 copy)", lora*(4*7+2), 0,
		func() error { return AdamWStep(d, p, m, vv, g, pb, gn.Slice(4, 4), lora, 1, hyper) })

	t.Logf("GPU: %s", d.Name)
	t.Logf("%-40s %9s %9s %9s", "op", "ms", "GB/s", "TFLOP/s")
	for _, r := range rows {
		gbs, tf := "", ""
		if r.bytes > 0 {
			gbs = fmt.Sprintf("%.0f", r.bytes/r.ms/1e6)
		}
		if r.flops > 0 {
			tf = fmt.Sprintf("%.1f", r.flops/r.ms/1e9)
		}
		t.Logf("%-40s %9.4f %9s %9s", r.name, r.ms, gbs, tf)
	}
}
