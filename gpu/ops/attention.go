//go:build t2mcuda

package ops

import (
	"fmt"
	"sync"

	"github.com/t2m/t2m/gpu/cuda"
)

// AttnDims are the sizes of one causal GQA attention call (the GPU side of model.AttnShape).
type AttnDims struct {
	B, T   int     // batch, sequence length; rows are b·T + t
	H, KVH int     // query heads, key/value heads (H % KVH == 0)
	D      int     // head dimension: 16, 32, 64 or 128
	Scale  float32 // softmax scale, D^−0.5 for Qwen2
}

func (a AttnDims) check(op string) error {
	switch {
	case a.B <= 0 || a.T <= 0 || a.H <= 0 || a.KVH <= 0:
		return fmt.Errorf("gpu: %s: sizes %+v must be positive", op, a)
	case a.H%a.KVH != 0:
		return fmt.Errorf("gpu: %s: %d query heads are not a multiple of %d KV heads", op, a.H, a.KVH)
	case a.D != 16 && a.D != 32 && a.D != 64 && a.D != 128:
		return fmt.Errorf("gpu: %s: head dim %d has no kernel (16, 32, 64, 128 do)", op, a.D)
	}
	return nil
}

func (a AttnDims) qBytes() int64  { return int64(a.B) * int64(a.T) * int64(a.H) * int64(a.D) * 2 }
func (a AttnDims) kvBytes() int64 { return int64(a.B) * int64(a.T) * int64(a.KVH) * int64(a.D) * 2 }
func (a AttnDims) lseBytes() int64 {
	return int64(a.B) * int64(a.H) * int64(a.T) * 4
}

// attnFwdSmem and attnBwdSmem are the dynamic shared memory of the kernels (ATT_FWD_SMEM and ATT_BWD_SMEM in
// kernels/attention.cu): double-buffered K/V tiles [2][2][64][D+8] bf16 and key flags; K [64][D+8], Q and dO
// tiles [2][2][32][D+8], dS [32][72] bf16, lse/delta [2][2][32] fp32 and key flags.
func (a AttnDims) attnFwdSmem() int { return 512*(a.D+8) + 512 }
func (a AttnDims) attnBwdSmem() int { return 384*(a.D+8) + 4608 + 1024 }

// smemRaised records the kernels whose dynamic shared memory limit was raised.
var smemRaised sync.Map // *Kernel → bool

// smemKernel returns the named kernel of kernels/<file>.ptx with its dynamic shared memory limit raised to smem.
func smemKernel(d *cuda.Device, file, name string, smem int) (*cuda.Kernel, error) {
	k, err := d.Kernel(file, name)
	if err != nil {
		return nil, err
	}
	if _, ok := smemRaised.Load(k); !ok && smem > 48<<10 {
		if err := k.SetMaxDynamicSmem(smem); err != nil {
			return nil, err
		}
		smemRaised.Store(k, true)
	}
	return k, nil
}

// attnBlocks is the number of 64-row tiles of a sequence (queries in the forward, keys in the backward).
func (a AttnDims) attnBlocks() int { return (a.T + 63) / 64 }

// AttentionForward launches attention_fwd_d<D> (CPU twin: model.AttentionForward): flash-style causal GQA
// attention, key j visible to query i iff j ≤ i and mask[b·T+j] ≠ 0; a query that sees no key gets zeros.
// o, q [B·T, H·D] bf16; k, v [B·T, KVH·D] bf16; mask [B·T] int32, or a zero Buffer for no padding;
// lse [B, H, T] fp32 receives each row's base-2 logsumexp of scale·log2(e)·q·k, which AttentionBackward needs.
func AttentionForward(d *cuda.Device, o, lse, q, k, v, mask cuda.Buffer, a AttnDims) error {
	if err := a.check("attention forward"); err != nil {
		return err
	}
	var mb int64
	if mask.Ptr != 0 {
		mb = int64(a.B) * int64(a.T) * 4
	}
	if err := kernArgs("attention forward", "o", o, a.qBytes(), "lse", lse, a.lseBytes(), "q", q, a.qBytes(),
		"k", k, a.kvBytes(), "v", v, a.kvBytes(), "mask", mask, mb); err != nil {
		return err
	}
	kern, err := smemKernel(d, "attention", fmt.Sprintf("attention_fwd_d%d", a.D), a.attnFwdSmem())
	if err != nil {
		return err
	}
	return d.Launch(kern, cuda.Dim3{X: a.attnBlocks(), Y: a.H, Z: a.B}, D1(128), a.attnFwdSmem(), o, lse, q, k, v, mask, a.T, a.H, a.KVH,
		a.Scale)
}

// AttentionBackwardScratchBytes is the scratch AttentionBackward needs: delta [B, H, T] and the fp32
// accumulators dq [B·T, H·D], dk and dv [B·T, KVH·D], each 256-byte aligned.
func AttentionBackwardScratchBytes(a AttnDims) int64 {
	return cuda.AlignUp(a.lseBytes()) + cuda.AlignUp(a.qBytes()*2) + 2*cuda.AlignUp(a.kvBytes()*2)
}

// attnSplitDQ selects AttentionBackward's way of computing dQ: false, in the same walk as dK and dV with fp32
// atomics; true, in a separate kernel that owns its query rows (no atomics, S and dP computed twice). Both
// pass the parity test; split is faster at the 7B shape (0.271 vs 0.299 ms on an H200, kernels/NOTES.md).
var attnSplitDQ = true

// AttentionBackward computes the gradients of AttentionForward (CPU twin: model.AttentionBackward), kernels of
// kernels/attention_bwd.cu: attention_bwd_pre (delta = rowsum(dO·O), zeroed fp32 accumulators), then either
// attention_bwd_d<D> (recompute P from lse; dQ, dK, dV by tensor-core tiles into the accumulators; dK and dV
// summed over each KV group) or attention_bwd_kv_d<D> (dK, dV) with attention_bwd_dq_d<D> (dQ, written
// directly), and attention_f32_to_bf16 for each accumulated gradient.
// dq [B·T, H·D], dk, dv [B·T, KVH·D] bf16 (overwritten); o, dout [B·T, H·D] bf16 (o from the forward);
// lse [B, H, T] fp32 from the forward; scratch of AttentionBackwardScratchBytes(a). With side non-nil (and
// the split dQ), the dQ kernel runs on the side stream beside the dK/dV kernel; the call returns with the
// main stream joined, so later work on it sees all three gradients.
func AttentionBackward(d *cuda.Device, side *Side, dq, dk, dv, q, k, v, o, dout, lse, mask, scratch cuda.Buffer,
	a AttnDims) error {
	if err := a.check("attention backward"); err != nil {
		return err
	}
	var mb int64
	if mask.Ptr != 0 {
		mb = int64(a.B) * int64(a.T) * 4
	}
	if err := kernArgs("attention backward", "dq", dq, a.qBytes(), "dk", dk, a.kvBytes(), "dv", dv, a.kvBytes(),
		"q", q, a.qBytes(), "k", k, a.kvBytes(), "v", v, a.kvBytes(), "o", o, a.qBytes(), "dout", dout,
		a.qBytes(), "lse", lse, a.lseBytes(), "mask", mask, mb, "scratch", scratch,
		AttentionBackwardScratchBytes(a)); err != nil {
		return err
	}
	off := int64(0)
	take := func(n int64) cuda.Buffer {
		b := scratch.Slice(off, n)
		off += cuda.AlignUp(n)
		return b
	}
	delta := take(a.lseBytes())    // [B, H, T] fp32
	dqacc := take(a.qBytes() * 2)  // [B·T, H·D] fp32 (unused when attnSplitDQ)
	dkacc := take(a.kvBytes() * 2) // [B·T, KVH·D] fp32
	dvacc := take(a.kvBytes() * 2) // [B·T, KVH·D] fp32
	split := attnSplitDQ
	dqZero := dqacc
	if split {
		dqZero = cuda.Buffer{}
	}

	pre, err := d.Kernel("attention_bwd", "attention_bwd_pre")
	if err != nil {
		return err
	}
	rows := a.B * a.T * a.H
	if err := d.Launch(pre, D1((rows+3)/4), D1(128), 0, delta, dqZero, dkacc, dvacc, o, dout, a.B, a.T, a.H,
		a.KVH, a.D); err != nil {
		return err
	}
	grid := cuda.Dim3{X: a.attnBlocks(), Y: a.H, Z: a.B}
	convs := [][2]cuda.Buffer{{dq, dqacc}, {dk, dkacc}, {dv, dvacc}}
	if split {
		kv, err := smemKernel(d, "attention_bwd", fmt.Sprintf("attention_bwd_kv_d%d", a.D), a.attnBwdSmem())
		if err != nil {
			return err
		}
		dqk, err := smemKernel(d, "attention_bwd", fmt.Sprintf("attention_bwd_dq_d%d", a.D), a.attnFwdSmem())
		if err != nil {
			return err
		}
		dqStream := d.Stream
		if side != nil { // dQ beside dK/dV: both read only what attention_bwd_pre and the forward wrote
			if err := side.Fork(d); err != nil {
				return err
			}
			dqStream = side.Stream
		}
		if err := d.LaunchOn(dqStream, dqk, grid, D1(128), a.attnFwdSmem(), dq, q, k, v, dout, lse, delta, mask,
			a.T, a.H, a.KVH, a.Scale); err != nil {
			return err
		}
		if err := d.Launch(kv, grid, D1(128), a.attnBwdSmem(), dkacc, dvacc, q, k, v, dout, lse, delta, mask,
			a.T, a.H, a.KVH, a.Scale); err != nil {
			return err
		}
		convs = convs[1:]
	} else {
		side = nil // one walk: nothing to run beside
		bwd, err := smemKernel(d, "attention_bwd", fmt.Sprintf("attention_bwd_d%d", a.D), a.attnBwdSmem())
		if err != nil {
			return err
		}
		if err := d.Launch(bwd, grid, D1(128), a.attnBwdSmem(), dqacc, dkacc, dvacc, q, k, v, dout, lse, delta,
			mask, a.T, a.H, a.KVH, a.Scale); err != nil {
			return err
		}
	}
	conv, err := d.Kernel("attention_bwd", "attention_f32_to_bf16")
	if err != nil {
		return err
	}
	for _, p := range convs {
		n := int(p[1].Bytes / 4)
		if err := d.Launch(conv, D1((n+255)/256), D1(256), 0, p[0], p[1], n); err != nil {
			return err
		}
	}
	if side != nil {
		return side.Join(d)
	}
	return nil
}
