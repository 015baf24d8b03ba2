// Package gpu runs t2m on NVIDIA GPUs: a CUDA runtime over gorgonia.org/cu, cuBLAS loaded at run time,
// one launcher per kernel of kernels/, the GPU machine that executes the model graph (training), the
// decoder (generation), and the "cuda" device that offers both through train's device registry.
//
// # Build tag: t2mcuda, not cuda
//
// Everything that touches CUDA is behind the build tag t2mcuda (`make build-cuda`). The tag cannot be
// `cuda`: gorgonia.org/gorgonia v0.9.18 has its own files under `cuda`, which import gorgonia.org/cu/dnn and
// need cudnn.h, so any package importing gorgonia (model/, and through it cmd/t2m) stops compiling under
// -tags cuda. Files of this package start with //go:build t2mcuda; the untagged files hold what every build
// shares: the Backend interface and ErrNoCUDA, the memory planner, the NF4 host layout, and the CPU twins of
// the random fills. The default build does not import gorgonia.org/cu; the rest of t2m reaches the GPU only
// through what the t2mcuda build's init registers (the "cuda" entry of train's device registry, and Get),
// and gets ErrNoCUDA in the default build.
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
//   - NF4: NF4Weight (device), UploadNF4 of an NF4Host (NF4HostFromQuant), d.DequantNF4 (kernel
//     nf4_dequant_bf16; its CPU twin is quant's (*Weight).Dequantize, which also owns the NF4 table).
//
// Adding an op: kernels/<op>.cu (+ `make kernels`), gpu/<op>.go with a launcher method that validates
// shapes and calls d.Launch, gpu/<op>_test.go comparing with the op's CPU function of model/ on random
// inputs with poisoned outputs.
//
// # The GPU machine (runtime_machine*.go)
//
// The model is one gorgonia ExprGraph whose nodes are coarse custom ops (model/doc.go lists each op and its
// CPU function); gorgonia.Grad adds the backward nodes. Machine executes that same graph:
//
//	m, err := gpu.NewMachine(d, g, arenaBytes) // g from model.Build (+ g.BuildGrad() for training)
//	err = m.Run(batch)                         // forward (+ loss and backward); no host round trip
//	err = m.Step(hyper, maxNorm)               // global grad-norm clip + AdamW on the flat LoRA params
//	loss, err := m.Output(g.Loss)              // the one download of a training step
//
// How it works:
//
//  1. Compile once per (batch, length) shape (NewMachine): the graph's topological order (gorgonia.Sort,
//     reversed), each node's input positions, and for every op its launcher: frozen weights uploaded once
//     (NF4 stays NF4; float32 becomes bf16), norm weights and biases as bf16 vectors, per-node extras
//     (attention's lse, LoRA temporaries). An op without a launcher is an error naming it, never a silent
//     CPU fallback. LoRA dropout (DropoutOp, LoRAGradOp 'X') runs with the CPU's mask bit for bit
//     (model.DropoutKeep's counter hash, kernels/dropout.cu).
//  2. Liveness (Liveness): a node's output lives from its step to its last reader's step; slices of the
//     packed attention gradient are views whose readers keep the packed buffer alive; attention's backward
//     also keeps the forward's output. Graph inputs, LoRA parameters/gradients (flat, for the optimizer),
//     the fused loss outputs and kept nodes are not planned.
//  3. Memory plan (PlanMemory): greedy by size, best fit among the tensors whose lifetimes intersect,
//     256-byte aligned, in one arena region reserved before the first launch, so an out-of-memory shows
//     at NewMachine. On the tiny model the plan equals its lower bound (the most bytes live at one step).
//  4. Execute (Run): for each node in order one launcher (kernel or cuBLAS) on the device's stream. NF4
//     linears dequantize into one shared scratch right before their GEMM, in the forward and again in
//     the backward. The lm_head + cross-entropy is one fused launch that writes the loss and dh, run at
//     whichever of the loss node and its gradient node comes first. q/k/v biases are a K = 1 GEMM
//     (ones·biasᵀ) before the GEMM with beta = 1. gorgonia's own "+" nodes (gradient sums) are AddBF16.
//  5. Optimizer (Step): the LoRA matrices live in flat buffers (fp32 masters, bf16 copies the forward
//     reads, fp32 gradients the LoRA gradient nodes write), so clipping and AdamW are one launch each.
//
// Tests: TestMachineLogits (tiny Qwen2, bf16/NF4/NF4+LoRA, every layer's hidden state and the logits vs
// the CPU TapeMachine), TestMachineLossGrads (loss and all LoRA gradients vs the CPU), TestMachineStep
// (grad norm and AdamW update vs a float64 host computation; loss goes down), TestMachineFixture (the tiny
// Qwen2 of model/testdata/qwen2_tiny against its HF transformers/PEFT references: hidden states, logits,
// loss, gradients).
//
// Training: gpu/train_backend_cuda.go registers the "cuda" train.Backend (one machine, micro-batches padded
// to its shape, the host keeps AdamW and checkpoints). Generation: gpu/decode*.go (Backend.NewGenerator).
//
// Next: SwiGLU's backward once for both gradients (now once per gradient node) and CUDA-graph capture of
// Run (scripts/bench/NOTES.md has the measurements behind both).
package gpu
