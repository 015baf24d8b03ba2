// Package gpu runs t2m on NVIDIA GPUs: it holds the "cuda" device that offers training and generation
// through train's device registry, built from the subpackages below it:
//
//   - gpu/cuda: the CUDA runtime over gorgonia.org/cu (Device, Open, Bind, kernels of the embedded PTX,
//     Launch, streams and events, Buffer, Upload/Download, Arena) and cuBLAS loaded at run time (BLAS.Gemm
//     and the linear-layer names on Mat views). gpu/cuda/cudatest holds what the tests share.
//   - gpu/ops: one launcher per kernel of kernels/ (RMSNorm, RoPE, attention, SwiGLU, residual adds,
//     embedding, the fused lm_head + cross-entropy, dropout, AdamW, gradient norm, NF4 dequantization, the
//     decoding kernels), each beside its parity test against the op's CPU twin in model/.
//   - gpu/machine: the GPU machine that executes the model's gorgonia graph (training and evaluation) and
//     its memory plan.
//   - gpu (this package): the backends and their registration. backend_cuda.go registers the "cuda" device
//     at init; train_backend_cuda.go is the training backend (one machine planned for the largest
//     micro-batch, each micro-batch run at its own shape; as a train.DeviceOptimizer, train_optimizer_cuda.go, it keeps the gradient sum, clipping and
//     AdamW on the GPU); decode*.go is the greedy generator (DECODE_NOTES.md);
//     runtime_api.go (every build) holds Backend, Get and ErrNoCUDA.
//
// Dependencies point down: gpu → gpu/machine → gpu/ops → gpu/cuda (internal/layering checks it).
//
// # Build tag: t2mcuda, not cuda
//
// Everything that touches CUDA is behind the build tag t2mcuda (`make build-cuda`). The tag cannot be
// `cuda`: gorgonia.org/gorgonia v0.9.18 has its own files under `cuda`, which import gorgonia.org/cu/dnn and
// need cudnn.h, so any package importing gorgonia (model/, and through it cmd/t2m) stops compiling under
// -tags cuda. Files of gpu/... start with //go:build t2mcuda; the untagged files hold what every build
// shares: the Backend interface and ErrNoCUDA (here), the memory planner (gpu/machine), the NF4 host layout
// (gpu/ops), and the bf16 conversions, arena alignment and CPU twins of the random fills (gpu/cuda). The
// default build does not import gorgonia.org/cu; the rest of t2m reaches the GPU only through what the
// t2mcuda build's init registers (the "cuda" entry of train's device registry, and Get), and gets ErrNoCUDA
// in the default build.
//
// # No GPU, no driver
//
// gorgonia.org/cu's package init calls os.Exit(1) when cuInit fails. gpu/cuda's cgo_cuda.c defines cuInit
// itself (an executable's symbol wins over libcuda's), calls the driver's through dlsym(RTLD_NEXT), keeps
// the result and returns success; cuda.Open reports the kept error in words. So bin/t2m-cuda runs its CPU
// commands on a machine without a GPU (libcuda.so.1 must still be loadable), and a GPU command there ends
// with "gpu: no usable NVIDIA GPU (cuInit: CUDA_ERROR_NO_DEVICE ...)".
//
// # Tests
//
// `go test -tags t2mcuda ./gpu/...` runs every package's tests; without a GPU they check the no-GPU error
// path and skip the rest (cudatest.Device skips). Each package's tests build to their own binary (make
// bench: bin/gpu.test, bin/gpu-cuda.test, bin/gpu-ops.test, bin/gpu-machine.test).
//
// Next: SwiGLU's backward once for both gradients (now once per gradient node) and CUDA-graph capture of
// the machine's Run (scripts/bench/NOTES.md has the measurements behind both).
package gpu
