//go:build t2mcuda

package ops

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/model"
)

// TestKVAppendDecodeAttentionParity appends one random key/value row per sequence into random caches
// (sequences in a permuted order, at random positions) and checks the caches exactly; then decode attention
// of each row against its cache, compared with the last query row of model.AttentionForward run on that
// sequence's keys 0..pos (other query rows random). The longest cache needs more than 48 KB of shared memory. Tolerance tolBF16: bf16 inputs, fp32 math, one bf16
// rounding of the output. For D = 128 also with the keys split over several blocks (DecodeAttentionSplit: 4
// slices of 28 heads × 3 rows, 13 of 7 × 3, the row at position 0 leaving all slices but the first empty),
// and with the GQA kernels (one block per KV head: 9 slices of 4 × 3, 32 of 1 × 3; and unsplit, where the
// 12400-token cache takes 194 chunks of the CUDA-core kernel's online softmax and 775 chunks of 16 keys, 194
// or 193 a warp, of the tensor-core kernel's, whose bf16 P stays within the same tolerance).
func TestKVAppendDecodeAttentionParity(t *testing.T) {
	d := cudatest.Device(t)
	rng := rand.New(rand.NewPCG(21, 22))
	for _, c := range []struct{ H, KVH, D, Cap int }{{4, 2, 16, 40}, {8, 8, 64, 130}, {28, 4, 128, 300}, {7, 1, 128, 12400}} {
		t.Run(fmt.Sprintf("H%d_KVH%d_D%d_cap%d", c.H, c.KVH, c.D, c.Cap), func(t *testing.T) {
			d.Bind()
			a := cudatest.Arena(t, d, 512<<20)
			dims := DecodeDims{Slots: 3, Cap: c.Cap, H: c.H, KVH: c.KVH, D: c.D}
			dims.Scale = model.NewAttnShape(1, 1, c.H, c.KVH, c.D).Scale
			kvd := c.KVH * c.D
			slots := []int32{2, 0, 1}
			// The last position (or 2048 keys: the CPU twin computes all T query rows), the first, one between.
			pos := []int32{int32(min(c.Cap-1, 2047)), 0, int32(rng.IntN(min(c.Cap, 2048)))}
			rows := len(slots)
			kc := ktRand(rng, dims.Slots*c.Cap*kvd, -1, 1)
			vc := ktRand(rng, dims.Slots*c.Cap*kvd, -1, 1)
			k, v := ktRand(rng, rows*kvd, -1, 1), ktRand(rng, rows*kvd, -1, 1)
			q := ktRand(rng, rows*c.H*c.D, -2, 2)
			dkc, dvc := ktBF16(t, d, a, kc), ktBF16(t, d, a, vc)
			ds, dp := ktUp(t, d, a, slots), ktUp(t, d, a, pos)
			if err := KVAppend(d, dkc, dvc, ktBF16(t, d, a, k), ktBF16(t, d, a, v), ds, dp, rows, dims); err != nil {
				t.Fatal(err)
			}
			for r := range rows { // the CPU twin: the append
				off := (int(slots[r])*c.Cap + int(pos[r])) * kvd
				copy(kc[off:off+kvd], k[r*kvd:(r+1)*kvd])
				copy(vc[off:off+kvd], v[r*kvd:(r+1)*kvd])
			}
			for _, p := range []struct {
				name      string
				got, want []float32
			}{{"k cache", ktGetBF16(t, d, dkc, len(kc)), kc}, {"v cache", ktGetBF16(t, d, dvc, len(vc)), vc}} {
				for i := range p.want {
					if p.got[i] != p.want[i] {
						t.Fatalf("%s[%d] = %v, want %v", p.name, i, p.got[i], p.want[i])
					}
				}
			}
			dq := ktBF16(t, d, a, q)
			type variant struct {
				name                        string
				d128, split, gqa, fill, mma bool // fill: split only where the blocks do not fill the GPU
			}
			variants := []variant{{"generic kernel", false, false, false, true, false}}
			if c.D == 128 {
				variants = append(variants, variant{"d128 kernel", true, false, false, true, false},
					variant{"keys split", true, true, false, true, false},
					variant{"GQA kernel, keys split", true, true, true, true, false},
					variant{"GQA kernel, one slice", true, true, true, false, false},
					variant{"GQA tensor-core kernel, keys split", true, true, true, true, true},
					variant{"GQA tensor-core kernel, one slice", true, true, true, false, true})
			}
			defer func(v, g, m bool, f, mr int) {
				decodeAttnD128, decodeAttnGQA, decodeAttnMMA, decodeFillBlocks, decodeMMAMinRows = v, g, m, f, mr
			}(decodeAttnD128, decodeAttnGQA, decodeAttnMMA, decodeFillBlocks, decodeMMAMinRows)
			decodeMMAMinRows = 1 // the tensor-core variants run on these 3 rows
			var outs [][]float32
			for _, v := range variants { // the generic kernel, and the D = 128 ones where they apply
				decodeAttnD128, decodeAttnGQA, decodeAttnMMA, decodeFillBlocks = v.d128, v.gqa, v.mma, 2*decodeSMs
				if !v.fill {
					decodeFillBlocks = 0
				}
				if dims.gqa() != v.gqa { // else the GQA variants would pass on the per-head kernels
					t.Fatalf("%s: the GQA kernel applies: %v", v.name, dims.gqa())
				}
				o := ktPoison(t, d, a, int64(rows*c.H*c.D)*2)
				var err error
				if v.split {
					switch s := dims.Splits(rows); {
					case v.fill && s < 2:
						t.Fatalf("%d rows of %d heads are not split", rows, c.H)
					case !v.fill && s != 1:
						t.Fatalf("%d rows of %d heads are split in %d with decodeFillBlocks 0", rows, c.H, s)
					}
					part := ktPoison(t, d, a, max(dims.SplitBytes(rows), 8))
					err = DecodeAttentionSplit(d, o, dq, dkc, dvc, ds, dp, part, rows, dims)
				} else {
					err = DecodeAttention(d, o, dq, dkc, dvc, ds, dp, rows, dims)
				}
				if err != nil {
					t.Fatal(err)
				}
				outs = append(outs, ktGetBF16(t, d, o, rows*c.H*c.D))
			}
			want := make([]float32, 0, rows*c.H*c.D)
			for r := range rows {
				T := int(pos[r]) + 1
				s := model.NewAttnShape(1, T, c.H, c.KVH, c.D)
				qf := ktRand(rng, T*c.H*c.D, -2, 2) // earlier query rows: random, not compared
				copy(qf[(T-1)*c.H*c.D:], q[r*c.H*c.D:(r+1)*c.H*c.D])
				base := int(slots[r]) * c.Cap * kvd
				mask := make([]int32, T)
				for j := range mask {
					mask[j] = 1
				}
				out := make([]float32, T*c.H*c.D)
				model.AttentionForward(out, qf, kc[base:base+T*kvd], vc[base:base+T*kvd], mask, s)
				want = append(want, out[(T-1)*c.H*c.D:]...)
			}
			for i, got := range outs {
				ktCompare(t, "decode attention ("+variants[i].name+")", got, want, tolBF16)
			}
		})
	}
}
