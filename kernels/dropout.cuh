// dropout.cuh: the LoRA dropout mask of model.DropoutKeep, bit for bit, shared by dropout.cu (the dropout
// kernels) and lora_grad.cu (LoRA products that drop their input as they read it).
#pragma once
#include <cuda_bf16.h>

// splitmix64 is rng.SplitMix64 (internal/rng), bit for bit.
__device__ __forceinline__ unsigned long long splitmix64(unsigned long long z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// lowbias32 is Wellons' 32-bit integer hash, the last step of model.DropoutHash.
__device__ __forceinline__ unsigned int lowbias32(unsigned int x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

// dropout_weyl gives model.dropoutWeyl's multiplier m (odd) and offset k for the flat indices whose high
// 32 bits are hi: element j hashes the Weyl sequence term lo32(j)*m + k.
__device__ __forceinline__ void dropout_weyl(unsigned long long seed, unsigned long long hi, unsigned int& m,
                                             unsigned int& k) {
    const unsigned long long z = splitmix64(seed ^ hi * 0x9E3779B97F4A7C15ull);
    m = (unsigned int)(z >> 32) | 1u;
    k = (unsigned int)z;
}

// dropout_keep_from is model.DropoutThreshold: p * 2^32 is exact in double, so is its ceiling (< 2^32 for
// p < 1).
__device__ __forceinline__ unsigned int dropout_keep_from(float p) { return (unsigned int)ceil((double)p * 4294967296.0); }

// dropout2_weyl drops the two bf16 of v, at flat indices j and j + dj ((m, k) those of their high word; w is
// the Weyl term lo32(j)*m + k): each kept one times scale, the dropped ones 0, rounded once to bf16.
__device__ __forceinline__ unsigned int dropout2_weyl(unsigned int v, unsigned int w, unsigned int dj, unsigned int m,
                                                      unsigned int keep_from, float scale) {
    const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&v));
    const __nv_bfloat162 r = __floats2bfloat162_rn(lowbias32(w) >= keep_from ? f.x * scale : 0.0f,
                                                   lowbias32(w + dj * m) >= keep_from ? f.y * scale : 0.0f);
    return *reinterpret_cast<const unsigned int*>(&r);
}

// dropout8_weyl drops the 8 elements ux at flat indices j0 .. j0+7 (j0 % 8 == 0, (m, k) those of hi32(j0)).
__device__ __forceinline__ uint4 dropout8_weyl(uint4 ux, unsigned int j0lo, unsigned int m, unsigned int k,
                                               unsigned int keep_from, float scale) {
    unsigned int w = j0lo * m + k;
    uint4 uy;
    const unsigned int* hx = reinterpret_cast<const unsigned int*>(&ux);
    unsigned int* hy = reinterpret_cast<unsigned int*>(&uy);
#pragma unroll
    for (int e = 0; e < 4; e++) {
        hy[e] = dropout2_weyl(hx[e], w, 1u, m, keep_from, scale);
        w += 2 * m;
    }
    return uy;
}

// dropout8 is the dropout of the 8 elements ux of the thread (t, b) and vector v (dropout_bf16's layout).
__device__ __forceinline__ uint4 dropout8(uint4 ux, unsigned int v, unsigned int t, unsigned int b, unsigned int c8,
                                          unsigned int tl, unsigned long long seed, float p, float scale) {
    const unsigned long long j0 = (((unsigned long long)b * tl + t) * c8 + v) * 8;  // logical flat index
    // model.DropoutHash: j0 % 8 == 0, so elements j0 .. j0+7 share hi32(j) and with it (m, k).
    unsigned int m, k;
    dropout_weyl(seed, j0 >> 32, m, k);
    return dropout8_weyl(ux, (unsigned int)j0, m, k, dropout_keep_from(p), scale);
}
