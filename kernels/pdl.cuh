// pdl.cuh: programmatic dependent launch (Hopper, sm_90). The kernels of a decode step are compiled twice: for
// sm_80 (kernels/X.ptx, where these are no-ops) and for sm_90 (kernels/X_sm90.ptx). A kernel launched with
// programmatic stream serialization (gpu/cuda: Device.PDL) may start while the kernel before it on the stream
// is still running, once every block of that one has called pdl_launch_dependents; pdl_wait then blocks until
// that kernel has finished and its memory writes are visible. So a kernel may read constant data (weights)
// and set up shared memory before pdl_wait, and must not touch anything an earlier kernel writes, nor write
// anything, before it. Every kernel of an _sm90 PTX calls pdl_wait (kernels' TestSM90PTXWaits). A build for
// sm_90 that must not hold them (nf4_wgmma.ptx, the twin of nf4_wgmma_sm90.ptx) defines T2M_NO_PDL.
#pragma once

// pdl_launch_dependents lets the next kernel on the stream launch once every block of this one has called it.
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && !defined(T2M_NO_PDL)
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// pdl_wait blocks until the kernels this one depends on have finished and their writes are visible.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && !defined(T2M_NO_PDL)
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// PDL_ENTRY starts a kernel that reads nothing before the previous kernel is done.
#define PDL_ENTRY()            \
  do {                         \
    pdl_launch_dependents();   \
    pdl_wait();                \
  } while (0)
