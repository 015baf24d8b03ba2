//go:build t2mcuda

package ops

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
)

// KVAppend launches kv_append_bf16: row r of k and v goes to position pos[r] of sequence slots[r]'s cache
// (CPU twin: the append of model.Generator's KVCache). kc, vc [Slots, Cap, KVH·D] bf16 (one layer);
// k, v [rows, KVH·D] bf16; slots, pos [rows] int32 with 0 ≤ slot < Slots and 0 ≤ pos < Cap (the caller
// checks them on the host: the kernel skips a row with pos outside the cache, and trusts slots).
func KVAppend(d *cuda.Device, kc, vc, k, v, slots, pos cuda.Buffer, rows int, c DecodeDims) error {
	if err := c.Check("kv append"); err != nil {
		return err
	}
	if rows <= 0 {
		return fmt.Errorf("gpu: kv append of %d rows", rows)
	}
	kvd := int64(c.KVH * c.D)
	if err := kernArgs("kv append", "k cache", kc, c.CacheBytes(), "v cache", vc, c.CacheBytes(),
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
