// Package gpu runs t2m on NVIDIA GPUs: a CUDA runtime over gorgonia.org/cu, cuBLAS loaded at run time,
// one launcher per kernel of kernels/, and (to come) the GPU machine that executes the model graph.
//
// # Build tag: t2mcuda, not cuda
//
// Everything that touches CUDA is behind the build tag t2mcuda (`make build-cuda`). The tag cannot be
// `cuda`: gorgonia.org/gorgonia v0.9.18 has its own files under `cuda`, which import gorgonia.org/cu/dnn and
// need cudnn.h, so any package importing gorgonia (model/, and through it cmd/t2m) stops compiling under
// -tags cuda. Files of this package start with //go:build t2mcuda; the untagged files (runtime_api.go,
// bench.go, nf4_ref.go, runtime_bf16.go) hold the types and CPU twins every build shares. The default build
// does not import gorgonia.org/cu; cmd reaches the GPU only through Get (a Backend registered by the
// t2mcuda build's init), which answers ErrNoCUDA elsewhere.
//
// # No GPU, no driver
//
// gorgonia.org/cu's package init calls os.Exit(1) when cuInit fails. cgo_cuda.c defines cuInit itself
// (an executable's symbol wins over libcuda's), calls the driver's through dlsym(RTLD_NEXT), keeps the
// result and returns success; Open reports the kept error in words. So bin/t2m-cuda runs its CPU commands
// on a machine without a GPU (libcuda.so.1 must still be loadable), and a GPU command there ends with
// "gpu: no usable NVIDIA GPU (cuInit: CUDA_ERROR_NO_DEVICE ...)".
//
// # Runtime
//
//   - Open(ordinal) → *Device: context, one non-blocking stream (all work goes there), name, memory,
//     compute capability (≥ 8.0 required). A CUDA context is per OS thread: call d.Bind() at the top of
//     every goroutine that uses d (tests do it through their device helper).
//   - Memory: d.Alloc/Free (cuMemAlloc, never managed memory), Arena (one allocation, 256-byte aligned bump
//     pointer with Mark/Release, At/Reserve for planned offsets, Peak), Upload/Download (generic over slice
//     element types, ordered on d's stream), d.Memset, pinned host memory (d.AllocHost).
//   - Kernels: d.Kernel(file, name) loads kernels/<file>.ptx once (the driver JITs sm_80 PTX for the card);
//     d.Launch(k, grid, block, smem, args...) takes Buffer, int, int64, uint64, float32, float64 arguments,
//     one 8-byte slot each (declare 64-bit integers long long in the kernel); k.SetMaxDynamicSmem for more
//     than 48 KB of dynamic shared memory. Launch errors come back at once, kernel faults at the next Sync
//     or Download.
//   - Timing: d.Record() → *Event, start.Millis(end).
//   - GEMM: d.BLAS() dlopens libcublas.so.13/.12/.11 (no cuBLAS at build time), one handle on d's stream
//     with a 32 MiB workspace of ours. BLAS.Gemm(transA, transB, alpha, A, B, beta, C) on row-major Mat
//     views (bf16·bf16 → bf16 or f32, f32·f32 → f32, fp32 accumulation), GemmBatched (strided), and the
//     linear-layer names: Linear y = x·Wᵀ, LinearGradInput dx = dy·W, LinearGradWeight dW = dyᵀ·x.
//   - NF4: NF4Weight (device), UploadNF4, d.DequantNF4 (kernel nf4_dequant_bf16, CPU twin DequantNF4CPU).
//
// Adding an op: kernels/<op>.cu (+ `make kernels`), gpu/<op>.go with a launcher method that validates
// shapes and calls d.Launch, gpu/<op>_test.go comparing with the op's CPU function of model/ on random
// inputs with poisoned outputs.
//
// # The GPU machine (design; not implemented yet)
//
// The model is one gorgonia ExprGraph whose nodes are coarse custom ops (model/doc.go lists each op and its
// CPU function). gorgonia.Grad adds the backward nodes, and the optimizer update is appended as ops too.
// The machine executes that same graph:
//
//  1. Compile once per (batch, length) shape: take the graph's topological order (gorgonia.Sort), look up
//     a GPU implementation for every op by its type (a registry map[opType]gpuOp filled by the launcher
//     files; an op without one is an error naming it, never a silent CPU fallback), and record for each
//     node its output shape, dtype and byte size.
//  2. Liveness: a node's buffer is live from the step that produces it to its last consumer's step.
//     Weights (NF4, bf16 embedding/lm_head), LoRA parameters, their fp32 masters, AdamW moments and
//     gradients are pinned for the whole run; inputs (token ids, labels, masks) are uploaded per step into
//     pinned buffers. Views (reshape, slice of a contiguous buffer) alias their input and extend its
//     lifetime instead of copying.
//  3. Memory plan: walk the order, assign each activation an offset in one arena region by best-fit over
//     free intervals (released at last use, sizes rounded to 256 B), largest-first within a step to limit
//     fragmentation. The plan's high-water mark is known before the first launch (Arena.Reserve), so an
//     out-of-memory is reported before training starts, with the largest tensors named. Ops with scratch
//     needs (NF4 dequant of a 18944×3584 weight, 136 MB bf16; attention's logsumexp; the CE chunk's
//     logits) declare them and get planned like outputs; one scratch buffer is shared by all dequants
//     since they run one at a time on one stream.
//  4. Execute: for each node in order, one launcher call (kernel or cuBLAS) on the device's stream with
//     the planned buffers; no allocation, no host round trip inside a step except the loss (and the
//     grad-norm, read back only for logging, after the step). Frozen NF4 linears dequantize into the
//     shared scratch right before their GEMM (forward and again in the backward: 7 GB/s of bytes is
//     ~10 ms of a ~100 ms step, cheaper than keeping bf16 weights). Because the sequence is fixed per
//     shape, a step can be captured once as a CUDA graph and replayed, removing launch gaps.
//  5. Check: every op's output can be compared with the CPU TapeMachine on the same inputs (a debug mode
//     that downloads each node), which is how the fixture model's parity is tested.
package gpu
