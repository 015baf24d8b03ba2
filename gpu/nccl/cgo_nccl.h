// Declarations of gpu/nccl/cgo_nccl.c: NCCL loaded with dlopen, its types declared here with the values
// of nccl.h (no NCCL header or library is needed to build).
#ifndef T2M_CGO_NCCL_H
#define T2M_CGO_NCCL_H
#include <stddef.h>

// ncclUniqueId: NCCL_UNIQUE_ID_BYTES (128) opaque bytes, passed by value to ncclCommInitRank.
typedef struct {
  char internal[128];
} t2m_nccl_id;

// ncclResult_t values used by the Go side.
#define T2M_NCCL_SUCCESS 0
#define T2M_NCCL_IN_PROGRESS 7
// ncclDataType_t ncclFloat32, ncclRedOp_t ncclSum.
#define T2M_NCCL_FLOAT32 7
#define T2M_NCCL_SUM 0

typedef struct t2m_nccl t2m_nccl; // one loaded library: its handle and entry points

// t2m_nccl_open dlopens path: 0 and *out on success; -1 when dlopen failed (t2m_nccl_dlerror says why);
// -2 when a required entry point is missing (*missing names it).
int t2m_nccl_open(const char* path, t2m_nccl** out, const char** missing);
const char* t2m_nccl_dlerror(void);
int t2m_nccl_has_config(t2m_nccl* l);

int t2m_nccl_get_version(t2m_nccl* l, int* v);
int t2m_nccl_get_unique_id(t2m_nccl* l, t2m_nccl_id* id);
int t2m_nccl_comm_init_rank(t2m_nccl* l, void** comm, int nranks, const t2m_nccl_id* id, int rank);
int t2m_nccl_comm_init_rank_nonblocking(t2m_nccl* l, void** comm, int nranks, const t2m_nccl_id* id, int rank);
int t2m_nccl_all_reduce_sum_f32(t2m_nccl* l, unsigned long long buf, size_t count, void* comm, void* stream);
int t2m_nccl_comm_get_async_error(t2m_nccl* l, void* comm, int* result);
int t2m_nccl_comm_finalize(t2m_nccl* l, void* comm); // -1 when the library has no ncclCommFinalize
int t2m_nccl_comm_destroy(t2m_nccl* l, void* comm);
int t2m_nccl_comm_abort(t2m_nccl* l, void* comm);
const char* t2m_nccl_error_string(t2m_nccl* l, int result);
const char* t2m_nccl_last_error(t2m_nccl* l, void* comm); // "" when the library has no ncclGetLastError
int t2m_cu_stream_query(void* stream); // cuStreamQuery's CUresult
const char* t2m_cu_error_name(int r);     // "CUDA_ERROR_...: description"
#endif
