//go:build t2mcuda

// cuBLASLt, loaded at run time like cuBLAS (cgo_cuda.c): prototypes and enum values are declared here from
// cublasLt.h, where they have been stable since CUDA 11.
#include "cgo_cublaslt.h"

#include <dlfcn.h>
#include <string.h>

// Enum values (cublasLt.h, library_types.h).
#define LT_COMPUTE_32F 68          // CUBLAS_COMPUTE_32F
#define LT_R_32F 0                 // CUDA_R_32F, the scale type
#define LT_DESC_TRANSA 3           // CUBLASLT_MATMUL_DESC_TRANSA, int32
#define LT_DESC_TRANSB 4           // CUBLASLT_MATMUL_DESC_TRANSB, int32
#define LT_PREF_MAX_WORKSPACE 1    // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64
#define LT_ALGO_ID 0               // CUBLASLT_ALGO_CONFIG_ID, int32
#define LT_ALGO_TILE 1             // CUBLASLT_ALGO_CONFIG_TILE_ID, uint32
#define LT_ALGO_SPLITK 2           // CUBLASLT_ALGO_CONFIG_SPLITK_NUM, int32
#define LT_ALGO_REDUCTION 3        // CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, uint32
#define LT_ALGO_STAGES 6           // CUBLASLT_ALGO_CONFIG_STAGES_ID, uint32
#define LT_ALGO_CLUSTER 8          // CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, uint16

// lt_result is cublasLtMatmulHeuristicResult_t.
typedef struct {
  uint64_t algo[8];
  size_t workspace;
  int state;
  float waves;
  int reserved[4];
} lt_result;

typedef int (*lt_create_fn)(void**);
typedef int (*lt_destroy_fn)(void*);
typedef int (*lt_desc_create_fn)(void**, int, int);
typedef int (*lt_desc_destroy_fn)(void*);
typedef int (*lt_set_attr_fn)(void*, int, const void*, size_t);
typedef int (*lt_layout_create_fn)(void**, int, uint64_t, uint64_t, int64_t);
typedef int (*lt_layout_destroy_fn)(void*);
typedef int (*lt_pref_create_fn)(void**);
typedef int (*lt_pref_destroy_fn)(void*);
typedef int (*lt_heuristic_fn)(void*, void*, void*, void*, void*, void*, void*, int, lt_result*, int*);
typedef int (*lt_matmul_fn)(void*, void*, const void*, const void*, void*, const void*, void*, const void*,
                            const void*, void*, void*, void*, const void*, void*, size_t, CUstream);
typedef int (*lt_algo_get_fn)(const void*, int, void*, size_t, size_t*);

static void* lt_lib = NULL;
static lt_create_fn p_create;
static lt_destroy_fn p_destroy;
static lt_desc_create_fn p_desc_create;
static lt_desc_destroy_fn p_desc_destroy;
static lt_set_attr_fn p_desc_set;
static lt_layout_create_fn p_layout_create;
static lt_layout_destroy_fn p_layout_destroy;
static lt_pref_create_fn p_pref_create;
static lt_pref_destroy_fn p_pref_destroy;
static lt_set_attr_fn p_pref_set;
static lt_heuristic_fn p_heuristic;
static lt_matmul_fn p_matmul;
static lt_algo_get_fn p_algo_get;

int t2m_lt_open(const char* path) {
  if (lt_lib != NULL) return 0;
  void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) return -1;
  p_create = (lt_create_fn)dlsym(lib, "cublasLtCreate");
  p_destroy = (lt_destroy_fn)dlsym(lib, "cublasLtDestroy");
  p_desc_create = (lt_desc_create_fn)dlsym(lib, "cublasLtMatmulDescCreate");
  p_desc_destroy = (lt_desc_destroy_fn)dlsym(lib, "cublasLtMatmulDescDestroy");
  p_desc_set = (lt_set_attr_fn)dlsym(lib, "cublasLtMatmulDescSetAttribute");
  p_layout_create = (lt_layout_create_fn)dlsym(lib, "cublasLtMatrixLayoutCreate");
  p_layout_destroy = (lt_layout_destroy_fn)dlsym(lib, "cublasLtMatrixLayoutDestroy");
  p_pref_create = (lt_pref_create_fn)dlsym(lib, "cublasLtMatmulPreferenceCreate");
  p_pref_destroy = (lt_pref_destroy_fn)dlsym(lib, "cublasLtMatmulPreferenceDestroy");
  p_pref_set = (lt_set_attr_fn)dlsym(lib, "cublasLtMatmulPreferenceSetAttribute");
  p_heuristic = (lt_heuristic_fn)dlsym(lib, "cublasLtMatmulAlgoGetHeuristic");
  p_matmul = (lt_matmul_fn)dlsym(lib, "cublasLtMatmul");
  p_algo_get = (lt_algo_get_fn)dlsym(lib, "cublasLtMatmulAlgoConfigGetAttribute");
  if (!p_create || !p_destroy || !p_desc_create || !p_desc_destroy || !p_desc_set || !p_layout_create ||
      !p_layout_destroy || !p_pref_create || !p_pref_destroy || !p_pref_set || !p_heuristic || !p_matmul ||
      !p_algo_get) {
    dlclose(lib);
    return -2;
  }
  lt_lib = lib;
  return 0;
}

int t2m_lt_create(void** h) { return p_create(h); }
int t2m_lt_destroy(void* h) { return p_destroy(h); }

void t2m_lt_op_destroy(t2m_lt_op* op) {
  if (op->a) p_layout_destroy(op->a);
  if (op->b) p_layout_destroy(op->b);
  if (op->c) p_layout_destroy(op->c);
  if (op->desc) p_desc_destroy(op->desc);
  memset(op, 0, sizeof(*op));
}

// t2m_lt_op_create describes the column-major product C[m, n] = op(A)·op(B) (cublasGemmEx's arguments):
// A is stored [m, k] (opA = N) or [k, m], B [k, n] or [n, k], each column-major with its leading dimension.
int t2m_lt_op_create(t2m_lt_op* op, int opA, int opB, int m, int n, int k, int atype, int lda, int btype, int ldb,
                     int ctype, int ldc) {
  memset(op, 0, sizeof(*op));
  int r = p_desc_create(&op->desc, LT_COMPUTE_32F, LT_R_32F);
  if (r == 0) r = p_desc_set(op->desc, LT_DESC_TRANSA, &opA, sizeof(opA));
  if (r == 0) r = p_desc_set(op->desc, LT_DESC_TRANSB, &opB, sizeof(opB));
  if (r == 0) r = p_layout_create(&op->a, atype, opA ? k : m, opA ? m : k, lda);
  if (r == 0) r = p_layout_create(&op->b, btype, opB ? n : k, opB ? k : n, ldb);
  if (r == 0) r = p_layout_create(&op->c, ctype, m, n, ldc);
  if (r != 0) t2m_lt_op_destroy(op);
  return r;
}

// t2m_lt_heuristics asks for up to max algorithms within ws bytes of workspace: their descriptors go to algos
// (T2M_LT_ALGO_BYTES each) and their wave counts to waves, in cuBLASLt's order; *n is how many.
int t2m_lt_heuristics(void* h, t2m_lt_op* op, size_t ws, int max, void* algos, float* waves, int* n) {
  void* pref = NULL;
  uint64_t wsb = ws;
  lt_result res[32];
  if (max > 32) max = 32;
  int r = p_pref_create(&pref);
  if (r == 0) r = p_pref_set(pref, LT_PREF_MAX_WORKSPACE, &wsb, sizeof(wsb));
  int got = 0;
  if (r == 0) r = p_heuristic(h, op->desc, op->a, op->b, op->c, op->c, pref, max, res, &got);
  if (pref) p_pref_destroy(pref);
  *n = 0;
  if (r != 0) return r;
  for (int i = 0; i < got; i++) {
    if (res[i].state != 0) continue;
    memcpy((char*)algos + (size_t)(*n) * T2M_LT_ALGO_BYTES, res[i].algo, T2M_LT_ALGO_BYTES);
    waves[*n] = res[i].waves;
    (*n)++;
  }
  return 0;
}

// t2m_lt_algo_info reads an algorithm's configuration; an attribute the library does not report is -1.
int t2m_lt_algo_info(const void* algo, int* id, int* tile, int* splitk, int* reduction, int* stages, int* cluster) {
  int32_t i32 = -1;
  uint32_t u32 = 0;
  uint16_t u16 = 0;
  size_t w = 0;
  *id = p_algo_get(algo, LT_ALGO_ID, &i32, sizeof(i32), &w) == 0 ? i32 : -1;
  *tile = p_algo_get(algo, LT_ALGO_TILE, &u32, sizeof(u32), &w) == 0 ? (int)u32 : -1;
  i32 = -1;
  *splitk = p_algo_get(algo, LT_ALGO_SPLITK, &i32, sizeof(i32), &w) == 0 ? i32 : -1;
  *reduction = p_algo_get(algo, LT_ALGO_REDUCTION, &u32, sizeof(u32), &w) == 0 ? (int)u32 : -1;
  *stages = p_algo_get(algo, LT_ALGO_STAGES, &u32, sizeof(u32), &w) == 0 ? (int)u32 : -1;
  *cluster = p_algo_get(algo, LT_ALGO_CLUSTER, &u16, sizeof(u16), &w) == 0 ? (int)u16 : -1;
  return 0;
}

int t2m_lt_matmul(void* h, t2m_lt_op* op, const void* algo, float alpha, CUdeviceptr A, CUdeviceptr B, float beta,
                  CUdeviceptr C, CUdeviceptr ws, size_t wsBytes, CUstream s) {
  return p_matmul(h, op->desc, &alpha, (const void*)A, op->a, (const void*)B, op->b, &beta, (const void*)C, op->c,
                  (void*)C, op->c, algo, (void*)ws, wsBytes, s);
}
