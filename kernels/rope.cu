// Rotary position embedding (HF Qwen2, rotate_half layout): for i < D/2, with a = pos * theta^(-2i/D),
//   y[i]       = x[i]       * cos(a) - x[i + D/2] * sin(a)
//   y[i + D/2] = x[i + D/2] * cos(a) + x[i]       * sin(a)
// The backward is the inverse rotation (sin -> -sin). Angles and products are fp32, as HF computes
// inv_freq and freqs in fp32; activations are bf16. y may alias x (in place).
#include <cuda_bf16.h>

// rope_bf16: x, y [N, H, D] bf16 (token-major: row n holds its H heads), pos [N] int32 (position of each
// token), theta the RoPE base, dir +1 forward, -1 backward (apply to dy to get dx).
// One thread per (token, head, i < D/2) pair; grid ceil(N*H*D/2 / 256), block 256.
extern "C" __global__ void __launch_bounds__(256) rope_bf16(
    __nv_bfloat16* y, const __nv_bfloat16* x, const int* __restrict__ pos, long long N, long long H, long long D,
    float theta, float dir) {
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
