// Residual add: y = a + b (the two branches of a Qwen2 decoder layer, and gradient accumulation where a value
// feeds two ops). fp32 math, one rounding. y may alias a or b. n a multiple of 8 for the bf16 kernel, of 4 for
// the fp32 one. One thread per 16 bytes; grid ceil(n/8 / 256) (bf16) or ceil(n/4 / 256) (fp32), block 256.
#include "bf16x8.cuh"
#include "pdl.cuh"

// residual_add_bf16: a, b [n] bf16 -> y [n] bf16; n8 = n/8.
extern "C" __global__ void __launch_bounds__(256) residual_add_bf16(
    uint4* y, const uint4* a, const uint4* b, long long n8) {
    PDL_ENTRY();
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n8) return;
    y[i] = bf16x8_add(a[i], b[i]);
}

// residual_add_f32: a, b [n] fp32 -> y [n] fp32; n4 = n/4.
extern "C" __global__ void __launch_bounds__(256) residual_add_f32(
    float4* y, const float4* a, const float4* b, long long n4) {
    PDL_ENTRY();
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n4) return;
    const float4 fa = a[i], fb = b[i];
    y[i] = make_float4(fa.x + fb.x, fa.y + fb.y, fa.z + fb.z, fa.w + fb.w);
}
