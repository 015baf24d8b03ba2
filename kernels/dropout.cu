// LoRA input dropout (CPU twin: model.DropoutForward): y_i = x_i / (1-p) where keep_i, else 0, with
// keep_i = (splitmix64(seed + j) >> 40) / 2^24 >= p, the counter-based draw of model.DropoutKeep, so the GPU
// mask is bit-identical to the CPU's. The forward and its backward (the same mask applied to dy) are the same
// kernel. j is the element's flat index in the logical [B, Tl, C] tensor the CPU sees, while the buffer is
// the machine's padded [B, Tp, C] (Tp >= Tl; rows t >= Tl are padding and get an arbitrary mask): row
// n = b*Tp + t maps to logical row b*Tl + t. fp32 math (x * scale, one rounding to bf16). p = 0 with
// scale = 1 is a copy (evaluation). One thread per 8 elements of one row (C % 8 == 0); grid
// ceil(rows*C/8 / 256), block 256. y may alias x.
#include <cuda_bf16.h>

__device__ __forceinline__ unsigned long long splitmix64(unsigned long long z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// dropout_bf16: x [rows, C] bf16 -> y [rows, C] bf16; rows = B*Tp; tp = Tp, tl = Tl.
extern "C" __global__ void __launch_bounds__(256) dropout_bf16(
    uint4* y, const uint4* x, long long rows, long long C, long long tp, long long tl,
    unsigned long long seed, float p, float scale) {
    const long long v = (long long)blockIdx.x * blockDim.x + threadIdx.x;  // which 8-element vector
    const long long c8 = C / 8;
    if (v >= rows * c8) return;
    const long long n = v / c8, c0 = (v - n * c8) * 8;
    const long long b = n / tp, t = n - b * tp;
    const unsigned long long j0 = (unsigned long long)((b * tl + t) * C + c0);  // logical flat index
    uint4 ux = x[v], uy;
    const __nv_bfloat162* hx = reinterpret_cast<const __nv_bfloat162*>(&ux);
    __nv_bfloat162* hy = reinterpret_cast<__nv_bfloat162*>(&uy);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        const float2 f = __bfloat1622float2(hx[k]);
        const float u0 = (float)(splitmix64(seed + j0 + 2 * k) >> 40) * (1.0f / 16777216.0f);
        const float u1 = (float)(splitmix64(seed + j0 + 2 * k + 1) >> 40) * (1.0f / 16777216.0f);
        hy[k] = __floats2bfloat162_rn(u0 >= p ? f.x * scale : 0.0f, u1 >= p ? f.y * scale : 0.0f);
    }
    y[v] = uy;
}
