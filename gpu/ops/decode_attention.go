//go:build t2mcuda

package ops

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
)

// DecodeDims are the sizes of the decoding kernels: a KV cache of Slots sequences with room for Cap tokens
// each, per layer [Slots, Cap, KVH·D] bf16, and attention with H query heads over KVH key/value heads.
type DecodeDims struct {
	Slots, Cap int
	H, KVH, D  int
	Scale      float32 // softmax scale, D^−0.5 for Qwen2
}

// CacheBytes is one layer's K (or V) cache.
func (c DecodeDims) CacheBytes() int64 {
	return int64(c.Slots) * int64(c.Cap) * int64(c.KVH) * int64(c.D) * 2
}

// Check reports sizes the decoding kernels cannot take, naming op.
func (c DecodeDims) Check(op string) error {
	switch {
	case c.Slots <= 0 || c.Cap <= 0 || c.H <= 0 || c.KVH <= 0 || c.D <= 0:
		return fmt.Errorf("gpu: %s: sizes %+v must be positive", op, c)
	case c.H%c.KVH != 0:
		return fmt.Errorf("gpu: %s: %d query heads are not a multiple of %d KV heads", op, c.H, c.KVH)
	case c.D > 128 || 128%c.D != 0 || c.KVH*c.D%8 != 0:
		return fmt.Errorf("gpu: %s: head dim %d: the kernels need a divisor of 128 and KVH·D a multiple of 8", op, c.D)
	}
	return nil
}

// decodeAttnSmem is decode_attention_bf16's dynamic shared memory: scores [Cap], partial outputs [128] and
// reduction scratch [32], fp32; decode_attention_d128_bf16's has partial outputs [8][128].
func (c DecodeDims) decodeAttnSmem() int {
	if c.d128() {
		return (c.Cap + 8*128 + 32) * 4
	}
	return (c.Cap + 160) * 4
}

// decodeAttnD128 selects decode_attention_d128_bf16 for head dim 128 (8 warps, 8-byte loads, 4 keys in
// flight per warp) over the generic decode_attention_bf16; both pass TestKVAppendDecodeAttentionParity.
var decodeAttnD128 = true

func (c DecodeDims) d128() bool { return decodeAttnD128 && c.D == 128 }

// DecodeAttention launches decode_attention_bf16, or decode_attention_d128_bf16 for D = 128 (CPU twin: the last query row of model.AttentionForward,
// as model.Generator.Step computes it): row r is the newest token, at position pos[r], of sequence slots[r],
// whose cache already holds its key and value (KVAppend first); it attends to keys 0..pos[r] of that
// cache, GQA (head h reads KV head h/(H/KVH)), fp32 softmax. o, q [rows, H·D] bf16; kc, vc [Slots, Cap,
// KVH·D] bf16; slots, pos [rows] int32.
func DecodeAttention(d *cuda.Device, o, q, kc, vc, slots, pos cuda.Buffer, rows int, c DecodeDims) error {
	if err := c.Check("decode attention"); err != nil {
		return err
	}
	if rows <= 0 {
		return fmt.Errorf("gpu: decode attention of %d rows", rows)
	}
	qb := int64(rows) * int64(c.H*c.D) * 2
	if err := kernArgs("decode attention", "o", o, qb, "q", q, qb, "k cache", kc, c.CacheBytes(),
		"v cache", vc, c.CacheBytes(), "slots", slots, int64(rows)*4, "pos", pos, int64(rows)*4); err != nil {
		return err
	}
	smem := c.decodeAttnSmem()
	if smem > 227<<10 {
		return fmt.Errorf("gpu: decode attention: a cache of %d tokens needs %d bytes of shared memory (at most %d)",
			c.Cap, smem, 227<<10)
	}
	name, threads := "decode_attention_bf16", 128
	if c.d128() {
		name, threads = "decode_attention_d128_bf16", 256
	}
	kern, err := d.Kernel("decode", name)
	if err != nil {
		return err
	}
	if smem > 48<<10 { // the cache length varies between calls: raise the limit each time it is needed
		if err := kern.SetMaxDynamicSmem(smem); err != nil {
			return err
		}
	}
	return d.Launch(kern, cuda.Dim3{X: c.H, Y: rows, Z: 1}, D1(threads), smem, o, q, kc, vc, slots, pos, c.H, c.KVH, c.D, c.Cap,
		c.Scale)
}
