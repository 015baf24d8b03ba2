//go:build t2mcuda

package gpu

import "fmt"

// DecodeDims are the sizes of the decoding kernels: a KV cache of Slots sequences with room for Cap tokens
// each, per layer [Slots, Cap, KVH·D] bf16, and attention with H query heads over KVH key/value heads.
type DecodeDims struct {
	Slots, Cap int
	H, KVH, D  int
	Scale      float32 // softmax scale, D^−0.5 for Qwen2
}

// cacheBytes is one layer's K (or V) cache.
func (c DecodeDims) cacheBytes() int64 {
	return int64(c.Slots) * int64(c.Cap) * int64(c.KVH) * int64(c.D) * 2
}

func (c DecodeDims) check(op string) error {
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

// KVAppend launches kv_append_bf16: row r of k and v goes to position pos[r] of sequence slots[r]'s cache
// (CPU twin: the append of model.Generator's KVCache). kc, vc [Slots, Cap, KVH·D] bf16 (one layer);
// k, v [rows, KVH·D] bf16; slots, pos [rows] int32 with 0 ≤ slot < Slots and 0 ≤ pos < Cap (the caller
// checks them on the host: the kernel skips a row with pos outside the cache, and trusts slots).
func KVAppend(d *Device, kc, vc, k, v, slots, pos Buffer, rows int, c DecodeDims) error {
	if err := c.check("kv append"); err != nil {
		return err
	}
	if rows <= 0 {
		return fmt.Errorf("gpu: kv append of %d rows", rows)
	}
	kvd := int64(c.KVH * c.D)
	if err := kernArgs("kv append", "k cache", kc, c.cacheBytes(), "v cache", vc, c.cacheBytes(),
		"k", k, int64(rows)*kvd*2, "v", v, int64(rows)*kvd*2, "slots", slots, int64(rows)*4, "pos", pos,
		int64(rows)*4); err != nil {
		return err
	}
	kern, err := d.Kernel("decode", "kv_append_bf16")
	if err != nil {
		return err
	}
	return d.Launch(kern, D1(rows), D1(128), 0, kc, vc, k, v, slots, pos, c.Cap, kvd)
}

// DecodeAttention launches decode_attention_bf16, or decode_attention_d128_bf16 for D = 128 (CPU twin: the last query row of model.AttentionForward,
// as model.Generator.Step computes it): row r is the newest token, at position pos[r], of sequence slots[r],
// whose cache already holds its key and value (KVAppend first); it attends to keys 0..pos[r] of that
// cache, GQA (head h reads KV head h/(H/KVH)), fp32 softmax. o, q [rows, H·D] bf16; kc, vc [Slots, Cap,
// KVH·D] bf16; slots, pos [rows] int32.
func DecodeAttention(d *Device, o, q, kc, vc, slots, pos Buffer, rows int, c DecodeDims) error {
	if err := c.check("decode attention"); err != nil {
		return err
	}
	if rows <= 0 {
		return fmt.Errorf("gpu: decode attention of %d rows", rows)
	}
	qb := int64(rows) * int64(c.H*c.D) * 2
	if err := kernArgs("decode attention", "o", o, qb, "q", q, qb, "k cache", kc, c.cacheBytes(),
		"v cache", vc, c.cacheBytes(), "slots", slots, int64(rows)*4, "pos", pos, int64(rows)*4); err != nil {
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
	return d.Launch(kern, Dim3{c.H, rows, 1}, D1(threads), smem, o, q, kc, vc, slots, pos, c.H, c.KVH, c.D, c.Cap,
		c.Scale)
}

// ArgmaxF32 launches argmax_f32 (CPU twin: model.Argmax): ids[r] = the first index of the largest value of
// row r of x. x [rows, V] fp32; ids [rows] int32. NaN logits never win (undefined if a row is all NaN).
func ArgmaxF32(d *Device, ids, x Buffer, rows, V int) error {
	if rows <= 0 || V <= 0 {
		return fmt.Errorf("gpu: argmax of [%d, %d]", rows, V)
	}
	if err := kernArgs("argmax", "ids", ids, int64(rows)*4, "x", x, int64(rows)*int64(V)*4); err != nil {
		return err
	}
	kern, err := d.Kernel("argmax", "argmax_f32")
	if err != nil {
		return err
	}
	return d.Launch(kern, D1(rows), D1(1024), 0, ids, x, V)
}
