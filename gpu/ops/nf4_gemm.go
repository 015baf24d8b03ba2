//go:build t2mcuda

package ops

import (
	"fmt"
	"math/bits"
	"os"

	"gorgonia.org/cu"

	"github.com/t2m/t2m/gpu/cuda"
)

// The NF4 GEMMs of kernels/nf4_gemm.cu and kernels/nf4_wgmma.cu: NF4GEMVFused's path for 33..96 rows.

// NF4GEMMMaxRows is the most rows NF4GEMVFused multiplies at once on weights nf4_gemm_* read (nf4GEMM):
// above NF4GEMVMaxRows it stages x and the codes in shared memory for blocks of 128 outputs and splits the
// inputs. At the 7B shape on an H200 that decodes 33 / 48 / 64 / 96 rows at 6.3 / 7.1 / 7.8 / 11.0 ms a step,
// against 6.1 / 6.7 / 6.2 / 7.6 with bf16 copies of the weights in the same call (twenty-third session), and
// 10.7 / 10.8 / 11.2 / 12.6 with each weight dequantized for cuBLAS (an earlier session).
const NF4GEMMMaxRows = 96

// nf4GEMMOn selects nf4_gemm_* for 33..NF4GEMMMaxRows rows where the weight allows it; T2M_NF4_GEMM=0 turns
// it off (steps of more than 32 rows then dequantize each weight for cuBLAS).
var nf4GEMMOn = os.Getenv("T2M_NF4_GEMM") != "0"

// nf4GEMM reports whether nf4_gemm_* read w: the tensor-core kernels' layout with in a multiple of 256 and
// absmax blocks of 64 (so that the absmax codes of 4 groups of 64 inputs are one aligned 4-byte word).
func nf4GEMM(w *NF4Weight) bool {
	return nf4GEMMOn && nf4GEMVMMA(w) && w.Cols%256 == 0 && w.BlockSize == 64 && w.BlockSize2%4 == 0
}

// nf4GEMMLaunch runs nf4_gemm_n48, _n64 or _n96 (the fewest rows that hold x's) for NF4GEMVFusedOn (or, with
// nf4WGMMAOn on Hopper, nf4WGMMALaunch), and, when the blocks split the inputs, nf4_gemm_reduce to add their
// partial sums and apply the epilogue.
func nf4GEMMLaunch(d *cuda.Device, s cu.Stream, a NF4GEMVArgs, f32 int64, rank, ldh int) error {
	if nf4WGMMAOn && d.CC[0] == 9 {
		return nf4WGMMALaunch(d, s, a, f32, rank, ldh)
	}
	nt := nf4GEMMRowTile(a.X.Rows) / 8 // tiles of 8 rows
	const wp = nf4GEMMWarps
	name := fmt.Sprintf("nf4_gemm_n%d", 8*nt)
	smem := nf4GEMMStages * (8*nt*nf4GEMMXS*2 + 32*wp*32)
	k, err := smemKernel(d, "nf4_gemm", name, smem)
	if err != nil {
		return err
	}
	perSM := 3 // the kernels' __launch_bounds__
	if nt == 12 {
		perSM = 2
	}
	return nf4GEMMRun(d, s, k, a, f32, rank, ldh, (a.W.Rows+32*wp-1)/(32*wp), 32*wp, perSM, smem)
}

// nf4GEMMRowTile is the rows an nf4_gemm_* or nf4_wgmma_* build takes for rows (33..NF4GEMMMaxRows): the
// fewest of 48, 64 and 96 that hold them.
func nf4GEMMRowTile(rows int) int {
	switch {
	case rows <= 48:
		return 48
	case rows <= 64:
		return 64
	}
	return 96
}

// nf4GEMMRun launches k (an nf4_gemm_* or nf4_wgmma_* kernel: tiles output tiles of threads threads, perSM
// blocks per multiprocessor, smem bytes of dynamic shared memory) over the splits of the inputs nf4GEMMSplits
// chooses, and nf4_gemm_reduce when there is more than one.
func nf4GEMMRun(d *cuda.Device, s cu.Stream, k *cuda.Kernel, a NF4GEMVArgs, f32 int64, rank, ldh, tiles, threads,
	perSM, smem int) error {
	x, y, w := a.X, a.Y, a.W
	splits, gps := nf4GEMMSplits(tiles, w.Cols/64, perSM, int64(x.Rows)*int64(w.Rows), a.Work.Bytes)
	part := cuda.Buffer{}
	if splits > 1 {
		part = a.Work
	}
	if err := d.LaunchOn(s, k, cuda.Dim3{X: tiles, Y: splits, Z: 1}, D1(threads), smem, y.Buf, x.Buf, w.Codes,
		w.Absmax, w.Code2, w.Absmax2, w.Offset, a.Beta, int64(x.Rows), int64(w.Rows), int64(w.Cols), int64(x.Stride()),
		int64(y.Stride()), int64(bits.TrailingZeros(uint(w.BlockSize))), int64(bits.TrailingZeros(uint(w.BlockSize2))),
		f32, a.Bias, a.H.Buf, a.B.Buf, a.Scale, int64(ldh), int64(rank), part, int64(gps)); err != nil {
		return err
	}
	if splits == 1 {
		return nil
	}
	r, err := d.Kernel("nf4_gemm", "nf4_gemm_reduce")
	if err != nil {
		return err
	}
	n := x.Rows * w.Rows
	return d.LaunchOn(s, r, D1((n+255)/256), D1(256), 0, y.Buf, part, int64(splits), int64(x.Rows), int64(w.Rows),
		int64(y.Stride()), a.Beta, f32, a.Bias, a.H.Buf, a.B.Buf, a.Scale, int64(ldh), int64(rank))
}

// nf4WGMMAOn selects nf4_wgmma_* (kernels/nf4_wgmma.cu: Hopper's warpgroup mma, sm_90a PTX) over nf4_gemm_*
// on compute capability 9.0 when T2M_NF4_WGMMA=1 (experiment; off by default). Same operands and the same
// splits; on an H200 at the 7B shape it decodes 33 / 48 / 64 / 96 rows at 7.6 / 9.2 / 9.9 / 12.6 ms a step
// against nf4_gemm's 6.6 / 7.6 / 8.4 / 11.2 (gpu/DECODE_NOTES.md, twenty-second session): it is the start of
// a wgmma path, not yet the faster one.
var nf4WGMMAOn = os.Getenv("T2M_NF4_WGMMA") == "1"

// nf4WGMMALaunch runs nf4_wgmma_n48, _n64 or _n96 (the fewest rows that hold x's) for nf4GEMMLaunch on Hopper,
// and nf4_gemm_reduce when its blocks split the inputs. A block takes 128 outputs; its dynamic shared memory is
// NF4_WG_SMEM: st stages of an x tile [N, 64] bf16 and the codes [128, 32] bytes 48 apart, then 2 weight tiles
// [128, 64] bf16.
func nf4WGMMALaunch(d *cuda.Device, s cu.Stream, a NF4GEMVArgs, f32 int64, rank, ldh int) error {
	n, st := nf4GEMMRowTile(a.X.Rows), 5 // rows, stages (NF4_WGMMA's S)
	if n == 96 {
		st = 4
	}
	smem := st*(n*128+128*48) + 2*128*128
	k, err := smemKernel(d, "nf4_wgmma", fmt.Sprintf("nf4_wgmma_n%d", n), smem)
	if err != nil {
		return err
	}
	return nf4GEMMRun(d, s, k, a, f32, rank, ldh, (a.W.Rows+127)/128, 256, 2, smem)
}

// nf4GEMMWarps, nf4GEMMStages and nf4GEMMXS are NF4_GEMM_WARPS, NF4_GEMM_STAGES and NF4_GEMM_XS of
// kernels/nf4_gemm.cu: a block's dynamic shared memory is nf4GEMMStages stages of x [8·NT, nf4GEMMXS] bf16 and
// the codes [32·nf4GEMMWarps, 32] bytes.
const (
	nf4GEMMWarps  = 4
	nf4GEMMStages = 4
	nf4GEMMXS     = 72
)
