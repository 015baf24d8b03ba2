// bf16x8.cuh: eight bf16 values in one 16-byte vector (uint4), the unit of the memory-bound kernels'
// loads and stores, converted to and from fp32.
#pragma once
#include <cuda_bf16.h>

// bf16x8_unpack widens the eight bf16 values of u into f[0..7].
__device__ __forceinline__ void bf16x8_unpack(uint4 u, float* f) {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 t = __bfloat1622float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}

// bf16x8_pack rounds f[0..7] to bf16 (nearest even) into one vector.
__device__ __forceinline__ uint4 bf16x8_pack(const float* f) {
    uint4 u;
    __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
    return u;
}

// bf16x8_add returns a + b element by element: fp32 sums, each rounded once to bf16.
__device__ __forceinline__ uint4 bf16x8_add(uint4 a, uint4 b) {
    float fa[8], fb[8];
    bf16x8_unpack(a, fa);
    bf16x8_unpack(b, fb);
#pragma unroll
    for (int i = 0; i < 8; i++) fa[i] += fb[i];
    return bf16x8_pack(fa);
}
