// Package kernels holds t2m's CUDA C kernels and the PTX that `make kernels` compiles from them.
//
// One .cu file per op (nf4.cu, rmsnorm.cu, ...), each with its PTX beside it (nf4.ptx). The PTX is
// committed and embedded into the Go binary (see PTX), so `go build -tags t2mcuda` needs no nvcc; the
// driver JIT-compiles it for the card at module load. `make kernels` runs nvcc 11.8 with
// -arch=compute_80 (PTX 7.8, sm_80: mma.sync bf16 works, Hopper-only instructions do not) and writes
// the SHA-256 of the source, followed by each header it includes with #include "x.cuh", into the PTX's
// first line:
//
//	// t2m-source: nf4.cu sha256=<64 hex digits>
//
// `make kernels-check` (and TestPTXMatchesSource here) fails when a .cu or one of its headers changed
// without its PTX being regenerated, or when a .cu has no PTX; neither needs nvcc or a GPU.
//
// The kernels of a decode step (the Makefile's PDL_SRC) are compiled a second time with -arch=compute_90 into
// X_sm90.ptx (SM90), where pdl.cuh's programmatic dependent launch instructions are on: on a Hopper card the
// decoder launches those (gpu/cuda's Device.PDL), so a kernel's prologue overlaps the end of the one before.
// TestSM90PTXWaits checks that every kernel there waits for its predecessor.
//
// nf4_wgmma.cu uses Hopper's warpgroup mma (wgmma), which needs PTX ISA 8.0 and the sm_90a target that nvcc
// 11.8 does not know: its instructions are inline PTX, and the Makefile raises the compute_90 PTX's header to
// `.version 8.0` / `.target sm_90a`, which the driver's JIT assembles (seen on an H200, driver 580). Its
// nf4_wgmma.ptx is built with T2M_NO_PDL (no griddepcontrol, as a base PTX must be), its nf4_wgmma_sm90.ptx
// with PDL; both load on compute capability 9.0 only, and gpu/ops launches them only there.
//
// Kernel conventions, so that the launchers in package gpu/ops stay uniform:
//   - extern "C" __global__ functions, named <op>[_<variant>], e.g. nf4_dequant_bf16;
//   - every parameter a pointer or a 64-bit scalar (long long, unsigned long long, double) or a float:
//     gorgonia.org/cu copies 8 bytes per argument, and cuda's Device.Launch puts a float's bits in the low word;
//   - a shape comment on every pointer parameter (// [B*T, C]) and a sentence on the grid the kernel
//     expects; the CPU twin that the parity test compares against is named in the kernel's comment.
//
// This package must not import gorgonia.org/cu (its init exits when no GPU is present) nor anything
// else of t2m: it is data.
package kernels
