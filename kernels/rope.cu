// Rotary position embedding (HF Qwen2, rotate_half layout): for i < D/2, with a = pos * theta^(-2i/D),
//   y[i]       = x[i]       * cos(a) - x[i + D/2] * sin(a)
//   y[i + D/2] = x[i + D/2] * cos(a) + x[i]       * sin(a)
// The backward is the inverse rotation (sin -> -sin). Angles and products are fp32, as HF computes
// inv_freq and freqs in fp32; activations are bf16. y may alias x (in place).
#include <cuda_bf16.h>
#include "pdl.cuh"

// rope_bf16: x, y [N, H, D] bf16 (token-major: row n holds its H heads), pos [N] int32 (position of each
// token), theta the RoPE base, dir +1 forward, -1 backward (apply to dy to get dx).
// One thread per (token, head, i < D/2) pair; grid ceil(N*H*D/2 / 256), block 256.
extern "C" __global__ void __launch_bounds__(256) rope_bf16(
    __nv_bfloat16* y, const __nv_bfloat16* x, const int* __restrict__ pos, long long N, long long H, long long D,
    float theta, float dir) {
    PDL_ENTRY();
    const long long half = D / 2;
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= N * H * half) return;
    const long long i = idx % half;
    const long long nh = idx / half;  // token*H + head
    const long long n = nh / H;
    // HF: inv_freq = 1 / theta^(arange(0, D, 2) / D), all fp32.
    const float inv = 1.0f / powf(theta, (float)(2 * i) / (float)D);
    const float a = (float)pos[n] * inv;
    float s, c;
    sincosf(a, &s, &c);
    s *= dir;
    const long long base = nh * D;
    const float x0 = __bfloat162float(x[base + i]);
    const float x1 = __bfloat162float(x[base + i + half]);
    y[base + i] = __float2bfloat16(x0 * c - x1 * s);
    y[base + i + half] = __float2bfloat16(x1 * c + x0 * s);
}

// The table path: rope_table_f32 computes (cos a, sin a) once per step for every row and frequency, exactly as
// model.RopeInvFreq and model.RoPEForward do (inv_freq = 1/float32(θ^(2i/D)) via float64 pow, a = float32(pos)·inv
// in fp32, cos and sin of that fp32 angle in float64), and rope_apply_bf16 rotates every layer's q and k with it:
// a pure bandwidth kernel, 8 pairs (two 16-byte loads) per thread.

// rope_table_f32: pos [N] int32 -> cs [N, D/2] float2 (cos, sin). grid ceil(N*D/2 / 256), block 256.
extern "C" __global__ void __launch_bounds__(256) rope_table_f32(
    float2* __restrict__ cs, const int* __restrict__ pos, long long N, long long D, float theta) {
    PDL_ENTRY();
    const long long half = D / 2;
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= N * half) return;
    const long long i = idx % half, n = idx / half;
    const float p = (float)pow((double)theta, (double)((float)(2 * i) / (float)D));
    const float a = (float)pos[n] * (1.0f / p);
    cs[idx] = make_float2((float)cos((double)a), (float)sin((double)a));
}

// rope_apply_bf16: x, y [N, H, D] bf16 (y may alias x), cs [N, D/2] float2 from rope_table_f32, dir +1 forward,
// -1 backward. D % 16 == 0. One thread per (row, head, 8 consecutive i < D/2); grid ceil(N*H*D/16 / 256),
// block 256.
extern "C" __global__ void __launch_bounds__(256) rope_apply_bf16(
    __nv_bfloat16* y, const __nv_bfloat16* x, const float2* __restrict__ cs, long long N, long long H, long long D,
    float dir) {
    PDL_ENTRY();
    const long long half = D / 2, per = half / 8;
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= N * H * per) return;
    const long long i0 = (idx % per) * 8;
    const long long nh = idx / per;  // row*H + head
    const long long n = nh / H;
    const long long base = nh * D;
    const uint4 u0 = *reinterpret_cast<const uint4*>(x + base + i0);
    const uint4 u1 = *reinterpret_cast<const uint4*>(x + base + i0 + half);
    const __nv_bfloat16* h0 = reinterpret_cast<const __nv_bfloat16*>(&u0);
    const __nv_bfloat16* h1 = reinterpret_cast<const __nv_bfloat16*>(&u1);
    const float4* c4 = reinterpret_cast<const float4*>(cs + n * half + i0);  // 4 x (cos, sin, cos, sin)
    uint4 o0, o1;
    __nv_bfloat16* q0 = reinterpret_cast<__nv_bfloat16*>(&o0);
    __nv_bfloat16* q1 = reinterpret_cast<__nv_bfloat16*>(&o1);
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const float4 t = c4[j];
        const float cc[2] = {t.x, t.z}, ss[2] = {t.y * dir, t.w * dir};
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int k = 2 * j + e;
            const float a = __bfloat162float(h0[k]), b = __bfloat162float(h1[k]);
            q0[k] = __float2bfloat16(a * cc[e] - b * ss[e]);
            q1[k] = __float2bfloat16(b * cc[e] + a * ss[e]);
        }
    }
    *reinterpret_cast<uint4*>(y + base + i0) = o0;
    *reinterpret_cast<uint4*>(y + base + i0 + half) = o1;
}
