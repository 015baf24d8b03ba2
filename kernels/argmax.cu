// Greedy token choice on the device: the index of each row's largest logit, the first one on ties
// (CPU twin: model.Argmax, as torch.argmax). NaN logits never win (x > best is false for them).
#include <math.h>
#include "pdl.cuh"

// am_better: whether (v, i) beats (bv, bi): larger value, or equal value and smaller index; bi < 0 is empty.
__device__ __forceinline__ bool am_better(float v, long long i, float bv, long long bi) {
    if (i < 0) return false;
    if (bi < 0) return true;
    return v > bv || (v == bv && i < bi);
}

// argmax_f32: x [rows, V] fp32 -> ids [rows] int32.
// grid (rows), block 1024.
extern "C" __global__ void __launch_bounds__(1024) argmax_f32(int* __restrict__ ids, const float* __restrict__ x,
                                                             long long V) {
    PDL_ENTRY();
    __shared__ float sv[32];
    __shared__ long long si[32];
    const float* xr = x + (long long)blockIdx.x * V;
    float bv = -INFINITY;
    long long bi = -1;
    for (long long i = threadIdx.x; i < V; i += blockDim.x) {
        const float v = xr[i];
        if (bi < 0 || v > bv) {  // ascending i: strict > keeps the first of equal values
            bv = v;
            bi = i;
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffff, bv, o);
        const long long oi = __shfl_xor_sync(0xffffffff, bi, o);
        if (am_better(ov, oi, bv, bi)) {
            bv = ov;
            bi = oi;
        }
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) {
        sv[warp] = bv;
        si[warp] = bi;
    }
    __syncthreads();
    if (warp == 0) {
        bv = lane < nw ? sv[lane] : -INFINITY;
        bi = lane < nw ? si[lane] : -1;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffff, bv, o);
            const long long oi = __shfl_xor_sync(0xffffffff, bi, o);
            if (am_better(ov, oi, bv, bi)) {
                bv = ov;
                bi = oi;
            }
        }
        if (lane == 0) ids[blockIdx.x] = (int)(bi < 0 ? 0 : bi);
    }
}
