//go:build t2mcuda

// Small C helpers for what gorgonia.org/cu lacks; see cgo_cuda.go.
#define _GNU_SOURCE
#include "cgo_cuda.h"
#include <string.h>

#include <dlfcn.h>
#include <stddef.h>

static CUresult t2m_cuinit_result = CUDA_SUCCESS;
static int t2m_cuinit_called = 0;

// cuInit interposes the driver's cuInit (an executable's definition wins over a shared library's), so that
// gorgonia.org/cu's package init, which calls os.Exit(1) when cuInit fails, sees success: the real result
// is kept and reported by t2m_cuinit_status when the program asks for a GPU. A binary built with CUDA can
// then run its CPU commands on a machine without a GPU, and a GPU command ends with a clear message.
CUresult cuInit(unsigned int flags) {
  typedef CUresult (*cuinit_fn)(unsigned int);
  cuinit_fn real = (cuinit_fn)dlsym(RTLD_NEXT, "cuInit");
  if (real == NULL) {
    t2m_cuinit_result = CUDA_ERROR_NOT_INITIALIZED;
  } else {
    t2m_cuinit_result = real(flags);
  }
  t2m_cuinit_called = 1;
  return CUDA_SUCCESS;
}

int t2m_cuinit_status(void) {
  if (!t2m_cuinit_called) {
    cuInit(0);
  }
  return (int)t2m_cuinit_result;
}

int t2m_launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
               unsigned smem, CUstream s, unsigned long long* args, int nargs) {
  void* params[T2M_MAX_KERNEL_ARGS];
  if (nargs > T2M_MAX_KERNEL_ARGS) return (int)CUDA_ERROR_INVALID_VALUE;
  for (int i = 0; i < nargs; i++) params[i] = &args[i];
  return (int)cuLaunchKernel(f, gx, gy, gz, bx, by, bz, smem, s, params, NULL);
}

// t2m_launch_pdl is t2m_launch with programmatic stream serialization: f may start before the kernel ahead
// of it on s has finished (it must wait for it with griddepcontrol.wait, kernels/pdl.cuh).
int t2m_launch_pdl(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                   unsigned smem, CUstream s, unsigned long long* args, int nargs) {
  void* params[T2M_MAX_KERNEL_ARGS];
  if (nargs > T2M_MAX_KERNEL_ARGS) return (int)CUDA_ERROR_INVALID_VALUE;
  for (int i = 0; i < nargs; i++) params[i] = &args[i];
  CUlaunchAttribute attr;
  memset(&attr, 0, sizeof attr);
  attr.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
  attr.value.programmaticStreamSerializationAllowed = 1;
  CUlaunchConfig cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.gridDimX = gx, cfg.gridDimY = gy, cfg.gridDimZ = gz;
  cfg.blockDimX = bx, cfg.blockDimY = by, cfg.blockDimZ = bz;
  cfg.sharedMemBytes = smem, cfg.hStream = s, cfg.attrs = &attr, cfg.numAttrs = 1;
  return (int)cuLaunchKernelEx(&cfg, f, params, NULL);
}

// ---- cuBLAS, loaded at run time -------------------------------------------------------------------------
typedef int (*cublas_create_fn)(void**);
typedef int (*cublas_destroy_fn)(void*);
typedef int (*cublas_set_stream_fn)(void*, CUstream);
typedef int (*cublas_set_workspace_fn)(void*, void*, size_t);
typedef int (*cublas_get_version_fn)(void*, int*);
typedef int (*cublas_gemm_ex_fn)(void*, int, int, int, int, int, const void*, const void*, int, int,
                                 const void*, int, int, const void*, void*, int, int, int, int);
typedef int (*cublas_gemm_sb_ex_fn)(void*, int, int, int, int, int, const void*, const void*, int, int,
                                    long long, const void*, int, int, long long, const void*, void*, int, int,
                                    long long, int, int, int);

static void* t2m_cublas_lib = NULL;
static cublas_create_fn p_create;
static cublas_destroy_fn p_destroy;
static cublas_set_stream_fn p_set_stream;
static cublas_set_workspace_fn p_set_workspace;
static cublas_get_version_fn p_get_version;
static cublas_gemm_ex_fn p_gemm_ex;
static cublas_gemm_sb_ex_fn p_gemm_sb_ex;

int t2m_cublas_open(const char* path) {
  if (t2m_cublas_lib != NULL) return 0;
  void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) return -1;
  p_create = (cublas_create_fn)dlsym(lib, "cublasCreate_v2");
  p_destroy = (cublas_destroy_fn)dlsym(lib, "cublasDestroy_v2");
  p_set_stream = (cublas_set_stream_fn)dlsym(lib, "cublasSetStream_v2");
  p_set_workspace = (cublas_set_workspace_fn)dlsym(lib, "cublasSetWorkspace_v2");
  p_get_version = (cublas_get_version_fn)dlsym(lib, "cublasGetVersion_v2");
  p_gemm_ex = (cublas_gemm_ex_fn)dlsym(lib, "cublasGemmEx");
  p_gemm_sb_ex = (cublas_gemm_sb_ex_fn)dlsym(lib, "cublasGemmStridedBatchedEx");
  if (!p_create || !p_destroy || !p_set_stream || !p_get_version || !p_gemm_ex || !p_gemm_sb_ex) {
    dlclose(lib);
    return -2;
  }
  t2m_cublas_lib = lib;
  return 0;
}

const char* t2m_dlerror(void) {
  const char* e = dlerror();
  return e == NULL ? "" : e;
}

int t2m_cublas_create(void** h) { return p_create(h); }
int t2m_cublas_destroy(void* h) { return p_destroy(h); }
int t2m_cublas_set_stream(void* h, CUstream s) { return p_set_stream(h, s); }
int t2m_cublas_has_workspace(void) { return p_set_workspace != NULL; }
int t2m_cublas_set_workspace(void* h, CUdeviceptr w, size_t bytes) {
  return p_set_workspace(h, (void*)w, bytes);
}
int t2m_cublas_version(void* h, int* v) { return p_get_version(h, v); }

int t2m_cublas_gemm(void* h, int opA, int opB, int m, int n, int k, float alpha, CUdeviceptr A, int atype,
                    int lda, CUdeviceptr B, int btype, int ldb, float beta, CUdeviceptr C, int ctype, int ldc) {
  return p_gemm_ex(h, opA, opB, m, n, k, &alpha, (const void*)A, atype, lda, (const void*)B, btype, ldb, &beta,
                   (void*)C, ctype, ldc, T2M_CUBLAS_COMPUTE_32F, T2M_CUBLAS_GEMM_DEFAULT);
}

int t2m_cublas_gemm_batched(void* h, int opA, int opB, int m, int n, int k, float alpha, CUdeviceptr A,
                            int atype, int lda, long long sa, CUdeviceptr B, int btype, int ldb, long long sb,
                            float beta, CUdeviceptr C, int ctype, int ldc, long long sc, int batch) {
  return p_gemm_sb_ex(h, opA, opB, m, n, k, &alpha, (const void*)A, atype, lda, sa, (const void*)B, btype, ldb,
                      sb, &beta, (void*)C, ctype, ldc, sc, batch, T2M_CUBLAS_COMPUTE_32F,
                      T2M_CUBLAS_GEMM_DEFAULT);
}

// CUDA graphs (stream capture; cuda.h maps the names to their _v2 entry points, which cgo cannot call by
// macro): begin capturing s in relaxed mode, end it into g, instantiate, launch, destroy.
int t2m_graph_begin(CUstream s) { return (int)cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_RELAXED); }

int t2m_graph_end(CUstream s, CUgraph* g) { return (int)cuStreamEndCapture(s, g); }

int t2m_graph_instantiate(CUgraphExec* e, CUgraph g) { return (int)cuGraphInstantiateWithFlags(e, g, 0); }

int t2m_graph_launch(CUgraphExec e, CUstream s) { return (int)cuGraphLaunch(e, s); }

int t2m_graph_destroy(CUgraphExec e, CUgraph g) {
  CUresult r = CUDA_SUCCESS;
  if (e != NULL) r = cuGraphExecDestroy(e);
  if (g != NULL) {
    CUresult r2 = cuGraphDestroy(g);
    if (r == CUDA_SUCCESS) r = r2;
  }
  return (int)r;
}
