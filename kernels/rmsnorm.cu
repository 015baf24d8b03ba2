// RMSNorm forward and backward (Qwen2RMSNorm): y = x * rsqrt(mean(x^2) + eps) * w.
// Activations are bf16, the weight is bf16, the math is fp32 (as HF does: it upcasts to fp32).
// One block per row; rows are [N, C] row-major with C a multiple of 8 (16-byte vectors).
//
// Scalar parameters are 64-bit integers or fp32 values: the Go launcher passes every argument in an 8-byte slot.
#include <cuda_bf16.h>
#include "bf16x8.cuh"
#include "pdl.cuh"

#define RMS_THREADS 256

// block_sum returns the sum of v over the block (all threads get it). red must hold 32 floats.
__device__ __forceinline__ float rms_block_sum(float v, float* red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();  // red may still be read by a previous call
    if (lane == 0) red[warp] = v;
    __syncthreads();
    int nw = blockDim.x >> 5;
    v = lane < nw ? red[lane] : 0.f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}


// rmsnorm_fwd_bf16: x [N, C] bf16, w [C] bf16 -> y [N, C] bf16, rstd [N] fp32 (may be null).
// grid (N), block RMS_THREADS.
extern "C" __global__ void __launch_bounds__(RMS_THREADS) rmsnorm_fwd_bf16(
    __nv_bfloat16* __restrict__ y, float* __restrict__ rstd, const __nv_bfloat16* __restrict__ x,
    const __nv_bfloat16* __restrict__ w, long long C, float eps) {
    PDL_ENTRY();
    __shared__ float red[32];
    const long long row = blockIdx.x;
    const uint4* xr = reinterpret_cast<const uint4*>(x + row * C);
    const uint4* wr = reinterpret_cast<const uint4*>(w);
    uint4* yr = reinterpret_cast<uint4*>(y + row * C);
    const int nv = (int)(C / 8);
    float ss = 0.f;
    for (int i = threadIdx.x; i < nv; i += blockDim.x) {
        float f[8];
        bf16x8_unpack(xr[i], f);
#pragma unroll
        for (int j = 0; j < 8; j++) ss += f[j] * f[j];
    }
    ss = rms_block_sum(ss, red);
    const float r = rsqrtf(ss / (float)C + eps);
    if (rstd != nullptr && threadIdx.x == 0) rstd[row] = r;
    for (int i = threadIdx.x; i < nv; i += blockDim.x) {
        float f[8], g[8];
        bf16x8_unpack(xr[i], f);
        bf16x8_unpack(wr[i], g);
#pragma unroll
        for (int j = 0; j < 8; j++) f[j] = f[j] * r * g[j];
        yr[i] = bf16x8_pack(f);
    }
}

// rmsnorm_bwd_bf16: gradient of x only (the norm weight is frozen under LoRA).
// With n = x*r (r = rsqrt(mean(x^2)+eps)) and g = dy*w: dx = r * (g - n * mean(g*n)).
// With res not null, dx = bf16(bf16(that) + res): the gradient sum with the residual branch, rounded as a
// separate residual_add_bf16 would round it, without writing and reading the norm's own gradient.
// dy [N, C] bf16, x [N, C] bf16, w [C] bf16, res [N, C] bf16 or null -> dx [N, C] bf16 (may alias res).
// grid (N), block RMS_THREADS.
extern "C" __global__ void __launch_bounds__(RMS_THREADS) rmsnorm_bwd_bf16(
    __nv_bfloat16* dx, const __nv_bfloat16* __restrict__ dy, const __nv_bfloat16* __restrict__ x,
    const __nv_bfloat16* __restrict__ w, const __nv_bfloat16* res, long long C, float eps) {
    PDL_ENTRY();
    __shared__ float red[32];
    const long long row = blockIdx.x;
    const uint4* xr = reinterpret_cast<const uint4*>(x + row * C);
    const uint4* dyr = reinterpret_cast<const uint4*>(dy + row * C);
    const uint4* wr = reinterpret_cast<const uint4*>(w);
    uint4* dxr = reinterpret_cast<uint4*>(dx + row * C);
    const int nv = (int)(C / 8);
    float ss = 0.f, gx = 0.f;
    for (int i = threadIdx.x; i < nv; i += blockDim.x) {
        float f[8], d[8], g[8];
        bf16x8_unpack(xr[i], f);
        bf16x8_unpack(dyr[i], d);
        bf16x8_unpack(wr[i], g);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            ss += f[j] * f[j];
            gx += d[j] * g[j] * f[j];
        }
    }
    ss = rms_block_sum(ss, red);
    gx = rms_block_sum(gx, red);
    const float r = rsqrtf(ss / (float)C + eps);
    // mean(g*n) = r * mean(g*x); dx = r*g - x * r^3 * mean(g*x).
    const float c = r * r * r * gx / (float)C;
    for (int i = threadIdx.x; i < nv; i += blockDim.x) {
        float f[8], d[8], g[8];
        bf16x8_unpack(xr[i], f);
        bf16x8_unpack(dyr[i], d);
        bf16x8_unpack(wr[i], g);
#pragma unroll
        for (int j = 0; j < 8; j++) f[j] = r * d[j] * g[j] - f[j] * c;
        dxr[i] = res == nullptr ? bf16x8_pack(f) : bf16x8_add(bf16x8_pack(f), reinterpret_cast<const uint4*>(res + row * C)[i]);
    }
}
