// Declarations of gpu/cgo_cuda.c: the cuInit interposer, a kernel launch without allocation, and cuBLAS
// loaded at run time (prototypes declared here; no cuBLAS header or library is needed to build).
#ifndef T2M_CGO_CUDA_H
#define T2M_CGO_CUDA_H
#include <cuda.h>
#include <stddef.h>

#define T2M_MAX_KERNEL_ARGS 32
// cuBLAS enum values (cublas_api.h, library_types.h); stable since CUDA 11.
#define T2M_CUBLAS_COMPUTE_32F 68
#define T2M_CUBLAS_GEMM_DEFAULT (-1)

int t2m_cuinit_status(void);
int t2m_launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
               unsigned smem, CUstream s, unsigned long long* args, int nargs);

int t2m_launch_pdl(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                   unsigned smem, CUstream s, unsigned long long* args, int nargs);

int t2m_graph_begin(CUstream s);
int t2m_graph_end(CUstream s, CUgraph* g);
int t2m_graph_instantiate(CUgraphExec* e, CUgraph g);
int t2m_graph_launch(CUgraphExec e, CUstream s);
int t2m_graph_destroy(CUgraphExec e, CUgraph g);

int t2m_cublas_open(const char* path);
const char* t2m_dlerror(void);
int t2m_cublas_create(void** h);
int t2m_cublas_destroy(void* h);
int t2m_cublas_set_stream(void* h, CUstream s);
int t2m_cublas_has_workspace(void);
int t2m_cublas_set_workspace(void* h, CUdeviceptr w, size_t bytes);
int t2m_cublas_version(void* h, int* v);
int t2m_cublas_gemm(void* h, int opA, int opB, int m, int n, int k, float alpha, CUdeviceptr A, int atype,
                    int lda, CUdeviceptr B, int btype, int ldb, float beta, CUdeviceptr C, int ctype, int ldc);
int t2m_cublas_gemm_batched(void* h, int opA, int opB, int m, int n, int k, float alpha, CUdeviceptr A,
                            int atype, int lda, long long sa, CUdeviceptr B, int btype, int ldb, long long sb,
                            float beta, CUdeviceptr C, int ctype, int ldc, long long sc, int batch);
#endif
