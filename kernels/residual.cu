// Residual add: y = a + b (the two branches of a Qwen2 decoder layer, and gradient accumulation where a value
// feeds two ops). fp32 math, one rounding. y may alias a or b. n a multiple of 8 for the bf16 kernel, of 4 for
// the fp32 one. One thread per 16 bytes; grid ceil(n/8 / 256) (bf16) or ceil(n/4 / 256) (fp32), block 256.
#include <cuda_bf16.h>

// residual_add_bf16: a, b [n] bf16 -> y [n] bf16; n8 = n/8.
extern "C" __global__ void __launch_bounds__(256) residual_add_bf16(
    uint4* y, const uint4* a, const uint4* b, long long n8) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n8) return;
    uint4 ua = a[i], ub = b[i], uy;
    const __nv_bfloat162* ha = reinterpret_cast<const __nv_bfloat162*>(&ua);
    const __nv_bfloat162* hb = reinterpret_cast<const __nv_bfloat162*>(&ub);
    __nv_bfloat162* hy = reinterpret_cast<__nv_bfloat162*>(&uy);
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const float2 fa = __bfloat1622float2(ha[j]), fb = __bfloat1622float2(hb[j]);
        hy[j] = __floats2bfloat162_rn(fa.x + fb.x, fa.y + fb.y);
    }
    y[i] = uy;
}

// residual_add_f32: a, b [n] fp32 -> y [n] fp32; n4 = n/4.
extern "C" __global__ void __launch_bounds__(256) residual_add_f32(
    float4* y, const float4* a, const float4* b, long long n4) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n4) return;
    const float4 fa = a[i], fb = b[i];
    y[i] = make_float4(fa.x + fb.x, fa.y + fb.y, fa.z + fb.z, fa.w + fb.w);
}
