// LoRA input dropout (CPU twin: model.DropoutForward): y_i = x_i / (1-p) where keep_i, else 0, with
// keep_i = DropoutHash(seed, j) >= ceil(p * 2^32), the counter-based draw of model.DropoutKeep
// (model.DropoutHash, model.DropoutThreshold), so the GPU mask is bit-identical to the CPU's. The forward
// and its backward (the same mask applied to dy) are the same kernel. j is the element's flat index in the
// logical [B, Tl, C] tensor the CPU sees, while the buffer is the machine's padded [B, Tp, C] (Tp >= Tl;
// rows t >= Tl are padding and get an arbitrary mask): row n = b*Tp + t maps to logical row b*Tl + t.
// fp32 math (x * scale, one rounding to bf16). p = 0 with scale = 1 is a copy (evaluation). y may alias x.
//
// Cost: one splitmix64 per thread (8 elements), then 32-bit integer work only per element (lowbias32: two
// 32-bit multiplies; no 64-bit multiply or division), and the grid is 3-D so a thread finds its row without
// dividing: the kernel is meant to be bound by memory bandwidth (read x, write y), not by integer throughput
// (its predecessor drew each element with a splitmix64 and divided 64-bit indices: sm_90 SASS of 448
// instructions, its 64-bit division routine included, against 192 now, for the same 8 elements a thread).
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

// dropout8 is the dropout of the 8 elements ux of the thread (t, b) and vector v (dropout_bf16's layout):
// each kept element times scale, the dropped ones 0, rounded once to bf16.
__device__ __forceinline__ uint4 dropout8(uint4 ux, unsigned int v, unsigned int t, unsigned int b, unsigned int c8,
                                          unsigned int tl, unsigned long long seed, float p, float scale) {
    const unsigned long long j0 = (((unsigned long long)b * tl + t) * c8 + v) * 8;  // logical flat index
    // model.DropoutHash: j0 % 8 == 0, so elements j0 .. j0+7 share hi32(j) and with it z; element j0 + e
    // hashes the Weyl sequence term lo32(j0)*m + k + e*m.
    const unsigned long long z = splitmix64(seed ^ (j0 >> 32) * 0x9E3779B97F4A7C15ull);
    const unsigned int m = (unsigned int)(z >> 32) | 1u;
    unsigned int w = (unsigned int)j0 * m + (unsigned int)z;
    // model.DropoutThreshold: p * 2^32 is exact in double, so is its ceiling (< 2^32 for p < 1).
    const unsigned int keep_from = (unsigned int)ceil((double)p * 4294967296.0);
    uint4 uy;
    const __nv_bfloat162* hx = reinterpret_cast<const __nv_bfloat162*>(&ux);
    __nv_bfloat162* hy = reinterpret_cast<__nv_bfloat162*>(&uy);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        const float2 f = __bfloat1622float2(hx[k]);
        const bool keep0 = lowbias32(w) >= keep_from;
        const bool keep1 = lowbias32(w + m) >= keep_from;
        w += 2 * m;
        hy[k] = __floats2bfloat162_rn(keep0 ? f.x * scale : 0.0f, keep1 ? f.y * scale : 0.0f);
    }
    return uy;
}

// dropout_bf16: x [B*Tp, C] bf16 -> y [B*Tp, C] bf16, c8 = C/8, tp = Tp, tl = Tl. Grid (Tp, ceil(c8/128), B),
// block 128: the thread of (t = blockIdx.x, b = blockIdx.z) handles the 8 elements c0 .. c0+7 (one uint4)
// of row b*Tp + t, c0 = 8 * (blockIdx.y*128 + threadIdx.x).
extern "C" __global__ void __launch_bounds__(128) dropout_bf16(
    uint4* y, const uint4* x, unsigned int c8, unsigned int tp, unsigned int tl, unsigned long long seed, float p,
    float scale) {
    const unsigned int v = blockIdx.y * blockDim.x + threadIdx.x;  // which 8-element vector of the row
    if (v >= c8) return;
    const unsigned int t = blockIdx.x, b = blockIdx.z;
    const unsigned long long i = ((unsigned long long)b * tp + t) * c8 + v;  // vector index in the buffer
    y[i] = dropout8(x[i], v, t, b, c8, tl, seed, p, scale);
}

// dropout_add_bf16 is dropout_bf16 followed by residual_add_bf16 in one pass: y = a + dropout(x), the
// dropout rounded to bf16 first and the sum rounded again, as the two kernels write them (the backward of
// LoRA dropout summed into the gradient of its input, without writing the dropped gradient). Same grid.
extern "C" __global__ void __launch_bounds__(128) dropout_add_bf16(
    uint4* y, const uint4* a, const uint4* x, unsigned int c8, unsigned int tp, unsigned int tl,
    unsigned long long seed, float p, float scale) {
    const unsigned int v = blockIdx.y * blockDim.x + threadIdx.x;
    if (v >= c8) return;
    const unsigned int t = blockIdx.x, b = blockIdx.z;
    const unsigned long long i = ((unsigned long long)b * tp + t) * c8 + v;
    uint4 ud = dropout8(x[i], v, t, b, c8, tl, seed, p, scale), ua = a[i], uy;
    const __nv_bfloat162* hd = reinterpret_cast<const __nv_bfloat162*>(&ud);
    const __nv_bfloat162* ha = reinterpret_cast<const __nv_bfloat162*>(&ua);
    __nv_bfloat162* hy = reinterpret_cast<__nv_bfloat162*>(&uy);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        const float2 fa = __bfloat1622float2(ha[k]), fd = __bfloat1622float2(hd[k]);
        hy[k] = __floats2bfloat162_rn(fa.x + fd.x, fa.y + fd.y);
    }
    y[i] = uy;
}
