// Declarations of gpu/cuda/cgo_cublaslt.c: cuBLASLt loaded at run time (no cuBLASLt header or library is
// needed to build), for choosing among the GEMM algorithms cuBLAS offers (gemm_tune.go).
#ifndef T2M_CGO_CUBLASLT_H
#define T2M_CGO_CUBLASLT_H
#include <cuda.h>
#include <stddef.h>
#include <stdint.h>

// T2M_LT_ALGO_BYTES is sizeof(cublasLtMatmulAlgo_t) (uint64_t data[8]), the same in CUDA 11.8 to 13.
#define T2M_LT_ALGO_BYTES 64

// t2m_lt_op is one matrix product's descriptors: the operation and the layouts of A, B and C (C is also D).
typedef struct {
  void* desc;
  void* a;
  void* b;
  void* c;
} t2m_lt_op;

int t2m_lt_open(const char* path);
int t2m_lt_create(void** h);
int t2m_lt_destroy(void* h);
int t2m_lt_op_create(t2m_lt_op* op, int opA, int opB, int m, int n, int k, int atype, int lda, int btype, int ldb,
                     int ctype, int ldc);
void t2m_lt_op_destroy(t2m_lt_op* op);
int t2m_lt_heuristics(void* h, t2m_lt_op* op, size_t ws, int max, void* algos, float* waves, int* n);
int t2m_lt_algo_info(const void* algo, int* id, int* tile, int* splitk, int* reduction, int* stages, int* cluster);
int t2m_lt_matmul(void* h, t2m_lt_op* op, const void* algo, float alpha, CUdeviceptr A, CUdeviceptr B, float beta,
                  CUdeviceptr C, CUdeviceptr ws, size_t wsBytes, CUstream s);
#endif
