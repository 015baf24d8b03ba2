// Package cuda is t2m's CUDA runtime over gorgonia.org/cu, and cuBLAS loaded at run time. Everything but
// the bf16 conversions, the arena alignment and the CPU twins of the random fills is behind the t2mcuda
// build tag (see package gpu).
//
//   - Open(ordinal) → *Device: context, one non-blocking stream (all work goes there), name, memory,
//     compute capability (≥ 8.0 required). A CUDA context is per OS thread: call d.Bind() at the top of
//     every goroutine that uses d (tests do it through cudatest.Device). Without a usable GPU or driver,
//     Open says so in words (cgo_cuda.c keeps cu's init from exiting; see package gpu).
//   - Memory: d.Alloc/Free (cuMemAlloc, never managed memory), Arena (a 256-byte aligned bump allocator over
//     one range of device addresses: reserved with cuMemAddressReserve and backed by cuMemCreate/cuMemMap in
//     steps of 256 MiB as its high-water mark grows, so a process holds what its buffers need; one cuMemAlloc
//     where the GPU has no virtual memory management; Mark/Release, At/Reserve for planned offsets, Peak,
//     Committed), Upload/Download (generic over slice element types, ordered on d's stream), d.Memset, pinned
//     host memory (d.AllocHost).
//   - Kernels: d.Kernel(file, name) loads kernels/<file>.ptx once (the driver JITs sm_80 PTX for the card);
//     d.Launch(k, grid, block, smem, args...) takes Buffer, int, int64, uint64, float32, float64 arguments,
//     one 8-byte slot each (declare 64-bit integers long long in the kernel); k.SetMaxDynamicSmem for more
//     than 48 KB of dynamic shared memory. Launch errors come back at once, kernel faults at the next Sync
//     or Download. The launchers of t2m's kernels are package gpu/ops.
//   - Streams and timing: d.NewStream, SyncEvent (Record on one stream, Wait on another); d.Record() →
//     *Event, start.Millis(end).
//   - GEMM: d.BLAS() dlopens libcublas.so.13/.12/.11 (no cuBLAS at build time), one handle on d's stream
//     with a 32 MiB workspace of ours. BLAS.Gemm(transA, transB, alpha, A, B, beta, C) on row-major Mat
//     views (bf16·bf16 → bf16 or f32, f32·f32 → f32, fp32 accumulation), GemmBatched (strided), and the
//     linear-layer names: Linear y = x·Wᵀ, LinearGradInput dx = dy·W, LinearGradWeight dW = dyᵀ·x.
//   - bf16: BF16 and F32 (short names for internal/bf16's one copy of the rounding), RoundBF16 and
//     RoundedBF16 (parallel rounding of large slices), UploadBF16 (float32 to a bf16 buffer in pieces).
package cuda
