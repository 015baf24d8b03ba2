//go:build t2mcuda

package ops

import (
	"fmt"

	"gorgonia.org/cu"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/quant"
)

// NF4Weight is an NF4 double-quantized [Rows, Cols] matrix in device memory (layout: see NF4Host).
type NF4Weight struct {
	Rows, Cols            int
	Codes                 cuda.Buffer // [Rows*Cols/2] uint8
	Absmax                cuda.Buffer // [ceil(Rows*Cols/BlockSize)] uint8
	Code2                 cuda.Buffer // [256] f32
	Absmax2               cuda.Buffer // [ceil(len(Absmax)/BlockSize2)] f32
	Offset                float32
	BlockSize, BlockSize2 int
}

// NumBlocks is the number of absmax entries, and of nested absmax entries.
func nf4Blocks(rows, cols, bs, bs2 int) (int, int) {
	nb := ceilDiv(rows*cols, bs)
	return nb, ceilDiv(nb, bs2)
}

// AllocNF4 takes the buffers of a [rows, cols] NF4 weight from a (block sizes bs, bs2).
func AllocNF4(a *cuda.Arena, rows, cols, bs, bs2 int, name string) (*NF4Weight, error) {
	if rows <= 0 || cols <= 0 || rows*cols%2 != 0 || bs%16 != 0 || bs <= 0 || bs2 <= 0 {
		return nil, fmt.Errorf("gpu: NF4 %s: shape [%d, %d], block sizes %d/%d", name, rows, cols, bs, bs2)
	}
	w := &NF4Weight{Rows: rows, Cols: cols, BlockSize: bs, BlockSize2: bs2}
	parts := nf4Parts(rows, cols, bs, bs2)
	var err error
	for k, dst := range []*cuda.Buffer{&w.Codes, &w.Absmax, &w.Code2, &w.Absmax2} {
		if *dst, err = a.Alloc(parts[k], "NF4 "+name); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// nf4Parts are the bytes of an NF4 weight's four buffers: codes, absmax codes, the second-level code table
// and the second-level absmax.
func nf4Parts(rows, cols, bs, bs2 int) [4]int64 {
	nb, nb2 := nf4Blocks(rows, cols, bs, bs2)
	return [4]int64{int64(rows) * int64(cols) / 2, int64(nb), 256 * 4, int64(nb2) * 4}
}

// NF4ArenaBytes is what AllocNF4 takes of an arena for a [rows, cols] NF4 weight (each buffer aligned).
func NF4ArenaBytes(rows, cols, bs, bs2 int) int64 {
	var n int64
	for _, b := range nf4Parts(rows, cols, bs, bs2) {
		n += cuda.AlignUp(b)
	}
	return n
}

// UploadNF4 copies a host NF4 matrix into new buffers from a.
func UploadNF4(d *cuda.Device, a *cuda.Arena, h *NF4Host, name string) (*NF4Weight, error) {
	if err := h.Check(); err != nil {
		return nil, fmt.Errorf("gpu: %s: %w", name, err)
	}
	w, err := AllocNF4(a, h.Rows, h.Cols, h.BlockSize, h.BlockSize2, name)
	if err != nil {
		return nil, err
	}
	w.Offset = h.Offset
	if err := cuda.Upload(d, w.Codes, h.Codes); err != nil {
		return nil, err
	}
	if err := cuda.Upload(d, w.Absmax, h.Absmax); err != nil {
		return nil, err
	}
	code2 := h.Code2 // a copy: cgo refuses a pointer into a struct that holds Go pointers
	if err := cuda.Upload(d, w.Code2, code2[:]); err != nil {
		return nil, err
	}
	return w, cuda.Upload(d, w.Absmax2, h.Absmax2)
}

// DequantNF4 writes w as bf16 into out ([Rows, Cols], at least Rows*Cols*2 bytes) on d's stream.
// Kernel: nf4_dequant_bf16 (kernels/nf4.cu); CPU twin: quant's (*Weight).Dequantize, rounded to bf16.
func DequantNF4(d *cuda.Device, w *NF4Weight, out cuda.Buffer) error {
	return DequantNF4On(d, d.Stream, w, out)
}

// DequantNF4On is DequantNF4 on stream s.
func DequantNF4On(d *cuda.Device, s cu.Stream, w *NF4Weight, out cuda.Buffer) error {
	n := int64(w.Rows) * int64(w.Cols)
	if n >= 1<<32 {
		return fmt.Errorf("gpu: NF4 dequant of [%d, %d]: the kernel indexes in 32 bits (split the weight)", w.Rows, w.Cols)
	}
	if out.Bytes < 2*n {
		return fmt.Errorf("gpu: NF4 dequant of [%d, %d] into %d bytes", w.Rows, w.Cols, out.Bytes)
	}
	k, err := d.Kernel("nf4", "nf4_dequant_bf16")
	if err != nil {
		return err
	}
	const threads, perThread = 256, 16
	blocks := int((n + threads*perThread - 1) / (threads * perThread))
	return d.LaunchOn(s, k, D1(blocks), D1(threads), 0, out, w.Codes, w.Absmax, w.Code2, w.Absmax2, w.Offset, n,
		int64(w.BlockSize), int64(w.BlockSize2))
}

// FillRandomU8 fills b with the bytes cuda.RandomU8CPU(b.Bytes, seed) gives, on d's stream.
func FillRandomU8(d *cuda.Device, b cuda.Buffer, seed uint64) error {
	k, err := d.Kernel("nf4", "fill_random_u8")
	if err != nil {
		return err
	}
	return d.Launch(k, D1(fillBlocks(b.Bytes)), D1(256), 0, b, b.Bytes, seed)
}

// FillRandomBF16 fills n bf16 values of b uniformly in [-scale, scale) (cuda.RandomBF16CPU's values).
func FillRandomBF16(d *cuda.Device, b cuda.Buffer, n int64, seed uint64, scale float32) error {
	if 2*n > b.Bytes {
		return fmt.Errorf("gpu: random fill of %d bf16 values into %d bytes", n, b.Bytes)
	}
	k, err := d.Kernel("nf4", "fill_random_bf16")
	if err != nil {
		return err
	}
	return d.Launch(k, D1(fillBlocks(n)), D1(256), 0, b, n, seed, scale)
}

// fillBlocks is the grid of a grid-stride fill over n elements.
func fillBlocks(n int64) int { return int(min((n+255)/256, 132*16)) }

// UploadQuantized uploads a frozen weight's quantized blocks (model.Frozen.Quant) for the kernels: q must be
// NF4 in quant's layout (t2m's own quantization or a bnb-4bit checkpoint). name is for errors and the arena.
func UploadQuantized(d *cuda.Device, a *cuda.Arena, q any, name string) (*NF4Weight, error) {
	w, ok := q.(*quant.Weight)
	if !ok {
		return nil, fmt.Errorf("gpu: %s is quantized as %T, not NF4 (quant.Weight)", name, q)
	}
	h, err := NF4HostFromQuant(w)
	if err != nil {
		return nil, fmt.Errorf("gpu: %s: %w", name, err)
	}
	return UploadNF4(d, a, h, name)
}
