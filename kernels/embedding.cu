// Embedding gather: y[n, :] = table[ids[n], :]. bf16 rows of C elements, C a multiple of 8 (16-byte copies).
// The embedding table is frozen under LoRA, so there is no backward kernel. An id outside [0, V) writes a zero
// row and sets *bad (if not null) to 1 + the token index, so the launcher can report which token was wrong.
#include <cuda_bf16.h>
#include "pdl.cuh"

// embedding_fwd_bf16: table [V, C] bf16, ids [N] int32 -> y [N, C] bf16; bad [1] int32 or null.
// grid (N), block 128.
extern "C" __global__ void __launch_bounds__(128) embedding_fwd_bf16(
    uint4* __restrict__ y, const uint4* __restrict__ table, const int* __restrict__ ids, int* bad, long long V,
    long long C) {
    PDL_ENTRY();
    const long long n = blockIdx.x;
    const long long c8 = C / 8;
    const long long id = ids[n];
    uint4* yr = y + n * c8;
    if (id < 0 || id >= V) {
        for (long long i = threadIdx.x; i < c8; i += blockDim.x) yr[i] = make_uint4(0, 0, 0, 0);
        if (bad != nullptr && threadIdx.x == 0) atomicCAS(bad, 0, (int)n + 1);
        return;
    }
    const uint4* tr = table + id * c8;
    for (long long i = threadIdx.x; i < c8; i += blockDim.x) yr[i] = tr[i];
}
