// AdamW (torch.optim.AdamW, non-amsgrad, foreach=False semantics) on flat fp32 master parameters:
//   p *= 1 - lr*wd
//   m = b1*m + (1-b1)*g ;  v = b2*v + (1-b2)*g^2
//   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// The host computes stepSize = lr/(1-b1^t) and invBC2Sqrt = 1/sqrt(1-b2^t) in float64 for step t.
// g is first multiplied by *gscale when gscale is not null (the clip factor written by gradnorm_finish, so clipping
// needs no host round trip). pbf16, when not null, receives the updated parameter rounded to bf16 (the copy the
// forward pass reads). All buffers [n]; grid ceil(n / 256), block 256.
#include <cuda_bf16.h>

extern "C" __global__ void __launch_bounds__(256) adamw_f32(
    float* __restrict__ p, float* __restrict__ m, float* __restrict__ v, const float* __restrict__ g,
    __nv_bfloat16* __restrict__ pbf16, const float* __restrict__ gscale, long long n, float lr, float beta1,
    float beta2, float eps, float wd, float stepSize, float invBC2Sqrt) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gi = g[i];
    if (gscale != nullptr) gi *= *gscale;
    float pi = p[i] * (1.0f - lr * wd);
    // torch: exp_avg.lerp_(grad, 1-beta1) == m + (1-b1)*(g-m).
    const float mi = m[i] + (1.0f - beta1) * (gi - m[i]);
    const float vi = v[i] * beta2 + (1.0f - beta2) * gi * gi;
    const float denom = sqrtf(vi) * invBC2Sqrt + eps;
    pi -= stepSize * mi / denom;
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
    if (pbf16 != nullptr) pbf16[i] = __float2bfloat16(pi);
}
