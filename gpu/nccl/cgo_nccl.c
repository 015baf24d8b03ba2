//go:build t2mcuda

// NCCL loaded at run time; see cgo_nccl.go.
#include "cgo_nccl.h"

#include <cuda.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>

typedef int (*get_version_fn)(int*);
typedef int (*get_unique_id_fn)(t2m_nccl_id*);
typedef int (*comm_init_rank_fn)(void**, int, t2m_nccl_id, int);
typedef int (*comm_init_rank_config_fn)(void**, int, t2m_nccl_id, int, void*);
typedef int (*all_reduce_fn)(const void*, void*, size_t, int, int, void*, void*);
typedef int (*comm_get_async_error_fn)(void*, int*);
typedef int (*comm_fn)(void*);
typedef const char* (*get_error_string_fn)(int);
typedef const char* (*get_last_error_fn)(void*);

struct t2m_nccl {
  void* lib;
  get_version_fn get_version;
  get_unique_id_fn get_unique_id;
  comm_init_rank_fn comm_init_rank;
  comm_init_rank_config_fn comm_init_rank_config; // NCCL 2.14+; NULL before
  all_reduce_fn all_reduce;
  comm_get_async_error_fn comm_get_async_error;
  comm_fn comm_finalize; // NCCL 2.14+; NULL before
  comm_fn comm_destroy;
  comm_fn comm_abort;
  get_error_string_fn get_error_string;
  get_last_error_fn get_last_error; // NCCL 2.13+; NULL before
};

// ncclConfig_t as NCCL 2.17 declared it. NCCL reads a config by its size and version fields, so a newer
// library takes this prefix and keeps its defaults for the fields added since.
typedef struct {
  size_t size;
  unsigned int magic;
  unsigned int version;
  int blocking;
  int cgaClusterSize;
  int minCTAs;
  int maxCTAs;
  const char* netName;
} t2m_nccl_config_v21700;

#define T2M_NCCL_API_MAGIC 0xcafebeef
#define T2M_NCCL_CONFIG_VERSION 21700 // NCCL_VERSION(2, 17, 0)
#define T2M_NCCL_UNDEF_INT INT_MIN

int t2m_nccl_open(const char* path, t2m_nccl** out, const char** missing) {
  void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) return -1;
  t2m_nccl* l = (t2m_nccl*)calloc(1, sizeof(t2m_nccl));
  if (l == NULL) {
    dlclose(lib);
    *missing = "memory";
    return -2;
  }
  l->lib = lib;
#define T2M_SYM(field, type, name)                 \
  l->field = (type)dlsym(lib, name);               \
  if (l->field == NULL) {                          \
    *missing = name;                               \
    dlclose(lib);                                  \
    free(l);                                       \
    return -2;                                     \
  }
  T2M_SYM(get_version, get_version_fn, "ncclGetVersion");
  T2M_SYM(get_unique_id, get_unique_id_fn, "ncclGetUniqueId");
  T2M_SYM(comm_init_rank, comm_init_rank_fn, "ncclCommInitRank");
  T2M_SYM(all_reduce, all_reduce_fn, "ncclAllReduce");
  T2M_SYM(comm_get_async_error, comm_get_async_error_fn, "ncclCommGetAsyncError");
  T2M_SYM(comm_destroy, comm_fn, "ncclCommDestroy");
  T2M_SYM(comm_abort, comm_fn, "ncclCommAbort");
  T2M_SYM(get_error_string, get_error_string_fn, "ncclGetErrorString");
#undef T2M_SYM
  l->comm_init_rank_config = (comm_init_rank_config_fn)dlsym(lib, "ncclCommInitRankConfig");
  l->comm_finalize = (comm_fn)dlsym(lib, "ncclCommFinalize");
  l->get_last_error = (get_last_error_fn)dlsym(lib, "ncclGetLastError");
  *out = l;
  return 0;
}

const char* t2m_nccl_dlerror(void) {
  const char* e = dlerror();
  return e == NULL ? "" : e;
}

int t2m_nccl_has_config(t2m_nccl* l) { return l->comm_init_rank_config != NULL; }
int t2m_nccl_get_version(t2m_nccl* l, int* v) { return l->get_version(v); }
int t2m_nccl_get_unique_id(t2m_nccl* l, t2m_nccl_id* id) { return l->get_unique_id(id); }

int t2m_nccl_comm_init_rank(t2m_nccl* l, void** comm, int nranks, const t2m_nccl_id* id, int rank) {
  return l->comm_init_rank(comm, nranks, *id, rank);
}

int t2m_nccl_comm_init_rank_nonblocking(t2m_nccl* l, void** comm, int nranks, const t2m_nccl_id* id, int rank) {
  t2m_nccl_config_v21700 c = {sizeof(t2m_nccl_config_v21700), T2M_NCCL_API_MAGIC, T2M_NCCL_CONFIG_VERSION, 0,
                              T2M_NCCL_UNDEF_INT, T2M_NCCL_UNDEF_INT, T2M_NCCL_UNDEF_INT, NULL};
  return l->comm_init_rank_config(comm, nranks, *id, rank, &c);
}

int t2m_nccl_all_reduce_sum_f32(t2m_nccl* l, unsigned long long buf, size_t count, void* comm, void* stream) {
  return l->all_reduce((const void*)buf, (void*)buf, count, T2M_NCCL_FLOAT32, T2M_NCCL_SUM, comm, stream);
}

int t2m_nccl_comm_get_async_error(t2m_nccl* l, void* comm, int* result) {
  return l->comm_get_async_error(comm, result);
}

int t2m_nccl_comm_finalize(t2m_nccl* l, void* comm) {
  if (l->comm_finalize == NULL) return -1;
  return l->comm_finalize(comm);
}

int t2m_nccl_comm_destroy(t2m_nccl* l, void* comm) { return l->comm_destroy(comm); }
int t2m_nccl_comm_abort(t2m_nccl* l, void* comm) { return l->comm_abort(comm); }

const char* t2m_nccl_error_string(t2m_nccl* l, int result) {
  const char* s = l->get_error_string(result);
  return s == NULL ? "" : s;
}

const char* t2m_nccl_last_error(t2m_nccl* l, void* comm) {
  if (l->get_last_error == NULL) return "";
  const char* s = l->get_last_error(comm);
  return s == NULL ? "" : s;
}

int t2m_cu_stream_query(void* stream) { return (int)cuStreamQuery((CUstream)stream); }

const char* t2m_cu_error_name(int r) {
  const char* name = NULL;
  cuGetErrorName((CUresult)r, &name);
  return name == NULL ? "unknown CUDA error" : name;
}
