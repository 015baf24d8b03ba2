//go:build t2mcuda

package ops

import (
	"fmt"
	"os"

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

// decodeAttnGQA selects decode_attention_gqa_d128_bf16 in DecodeAttentionSplit where it applies (D = 128, at
// most gqaMaxGroup query heads per KV head): one block per KV head reads each key and value row once for its
// whole group. Tests turn it off to check the per-head kernels.
var decodeAttnGQA = true

// decodeAttnMMA selects, where the GQA kernel applies and a step has at least decodeMMAMinRows rows,
// decode_attention_mma_d128_bf16 (the group's heads as rows of tensor-core tiles, P rounded to bf16 as the
// prefill's flash attention rounds it) over decode_attention_gqa_d128_bf16 (CUDA cores, fp32 P);
// T2M_DECODE_ATTN=gqa turns it off. On an H200 at the 7B shape (prompt 400) it takes attention from 2.39 to
// 1.00 ms of a 96-row step, and steps of 8 / 16 / 32 / 96 rows from 3.80–3.82 / 4.44–4.53 / 6.22–6.27 /
// 10.99–11.07 ms to 3.70–3.71 / 4.21–4.23 / 5.88–5.89 / 9.79–9.89 (scripts/bench/NOTES.md, twenty-third
// session).
var decodeAttnMMA = os.Getenv("T2M_DECODE_ATTN") != "gqa"

// decodeMMAMinRows is the fewest rows decode_attention_mma_d128_bf16 takes: at 1, 2 and 4 rows (32 or more
// key slices of a few chunks) it was no faster than the GQA kernel (3.08–3.15 against 3.07–3.11 ms a step at
// 1 row, within the runs' spread). Tests set it to 1 to check the kernel on a few rows.
var decodeMMAMinRows = 8

// decodeMMASmem is DMMA_SMEM of kernels/decode.cu: 4 warps × 2 stages × a K and a V chunk [16, 136] bf16.
const decodeMMASmem = 4 * 2 * 2 * 16 * 136 * 2

// gqaMaxGroup is the most query heads per KV head decode_attention_gqa_d128_bf16 takes (GQA_MAXG).
const gqaMaxGroup = 8

func (c DecodeDims) gqa() bool { return decodeAttnGQA && c.d128() && c.H/c.KVH <= gqaMaxGroup }

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

// decodePartFloats is one slice's record in the split's scratch: its output [128], max score and sum.
const decodePartFloats = 130

// decodeFillBlocks is the number of blocks a decode attention launch should have: twice decodeSMs. Tests
// set it to 0 to check the kernels unsplit where they would split.
var decodeFillBlocks = 2 * decodeSMs

// Splits is the number of key slices DecodeAttentionSplit cuts each row's keys into for rows rows: 1 when
// the unsplit launch (rows·KVH blocks with the GQA kernel, else rows·H) fills the GPU twice or D ≠ 128, else
// enough slices for that, at most one per 32 cached tokens and 32 in all.
func (c DecodeDims) Splits(rows int) int {
	blocks := rows * c.H
	if c.gqa() {
		blocks = rows * c.KVH
	}
	if !c.d128() || blocks >= decodeFillBlocks {
		return 1
	}
	return max(1, min((decodeFillBlocks+blocks-1)/blocks, c.Cap/32, 32))
}

// SplitBytes is the scratch DecodeAttentionSplit needs for steps of up to maxRows rows ([rows, H, S, 130]
// fp32 at the largest rows·S); 0 when no step is split.
func (c DecodeDims) SplitBytes(maxRows int) int64 {
	var most int64
	for rows := 1; rows <= maxRows; rows++ {
		s := c.Splits(rows)
		if s == 1 {
			break // Splits only falls as rows grow
		}
		most = max(most, int64(rows)*int64(c.H)*int64(s)*decodePartFloats*4)
	}
	return most
}

// DecodeAttentionSplit is DecodeAttention with each row's keys cut into c.Splits(rows) slices, one block
// each (flash decoding), for steps whose blocks would leave most of the GPU idle: the slices' partial
// outputs, maxima and sums go to part (at least c.SplitBytes(rows) bytes), and decode_attention_merge_bf16
// combines them into o. Where the GQA kernel applies (c.gqa()) it runs one block per KV head and slice, else
// one per query head and slice; with one slice and no GQA kernel it is DecodeAttention (part unused).
// Kernels: decode_attention_mma_d128_bf16 (decodeAttnMMA), decode_attention_gqa_d128_bf16 or
// decode_attention_split_d128_bf16, then decode_attention_merge_bf16 (kernels/decode.cu); CPU twin as
// DecodeAttention's.
func DecodeAttentionSplit(d *cuda.Device, o, q, kc, vc, slots, pos, part cuda.Buffer, rows int, c DecodeDims) error {
	if err := c.Check("decode attention"); err != nil {
		return err
	}
	S := c.Splits(rows)
	if rows <= 0 || (S == 1 && !c.gqa()) {
		return DecodeAttention(d, o, q, kc, vc, slots, pos, rows, c)
	}
	qb := int64(rows) * int64(c.H*c.D) * 2
	partBytes := int64(rows) * int64(c.H) * int64(S) * decodePartFloats * 4
	if S == 1 {
		partBytes = 0
	}
	if err := kernArgs("decode attention", "o", o, qb, "q", q, qb, "k cache", kc, c.CacheBytes(),
		"v cache", vc, c.CacheBytes(), "slots", slots, int64(rows)*4, "pos", pos, int64(rows)*4,
		"slices", part, partBytes); err != nil {
		return err
	}
	if c.gqa() {
		name, threads, smem := "decode_attention_gqa_d128_bf16", 256, 0
		if decodeAttnMMA && rows >= decodeMMAMinRows {
			name, threads, smem = "decode_attention_mma_d128_bf16", 128, decodeMMASmem
		}
		kern, err := smemKernel(d, "decode", name, smem)
		if err != nil {
			return err
		}
		if err := d.Launch(kern, cuda.Dim3{X: c.KVH, Y: rows, Z: S}, D1(threads), smem, o, part, q, kc, vc, slots,
			pos, c.H, c.KVH, c.Cap, c.Scale); err != nil {
			return err
		}
		if S == 1 {
			return nil
		}
		return decodeAttentionMerge(d, o, part, rows, S, c)
	}
	smem := ((c.Cap+S-1)/S + 8*128 + 32) * 4
	if smem > 227<<10 {
		return fmt.Errorf("gpu: decode attention: a slice of %d tokens needs %d bytes of shared memory (at most %d)",
			(c.Cap+S-1)/S, smem, 227<<10)
	}
	kern, err := d.Kernel("decode", "decode_attention_split_d128_bf16")
	if err != nil {
		return err
	}
	if smem > 48<<10 {
		if err := kern.SetMaxDynamicSmem(smem); err != nil {
			return err
		}
	}
	if err := d.Launch(kern, cuda.Dim3{X: c.H, Y: rows, Z: S}, D1(256), smem, part, q, kc, vc, slots, pos, c.H, c.KVH,
		c.Cap, c.Scale); err != nil {
		return err
	}
	return decodeAttentionMerge(d, o, part, rows, S, c)
}

// decodeAttentionMerge launches decode_attention_merge_bf16: o from the S slices' records in part.
func decodeAttentionMerge(d *cuda.Device, o, part cuda.Buffer, rows, S int, c DecodeDims) error {
	merge, err := d.Kernel("decode", "decode_attention_merge_bf16")
	if err != nil {
		return err
	}
	return d.Launch(merge, cuda.Dim3{X: c.H, Y: rows, Z: 1}, D1(128), 0, o, part, c.H, S)
}
