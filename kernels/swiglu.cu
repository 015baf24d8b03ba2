// SwiGLU (Qwen2MLP's act): h = silu(gate) * up, silu(g) = g * sigmoid(g). bf16 in and out, fp32 math.
// Backward: dgate = dh * up * sigmoid(g) * (1 + g * (1 - sigmoid(g))), dup = dh * silu(g).
// All buffers [N*I] bf16 with N*I a multiple of 8 (16-byte vectors). One thread per 8 elements;
// grid ceil(N*I/8 / 256), block 256.
#include <cuda_bf16.h>
#include "bf16x8.cuh"
#include "pdl.cuh"


// swiglu_fwd_bf16: gate, up [n] bf16 -> h [n] bf16; n8 = n/8.
extern "C" __global__ void __launch_bounds__(256) swiglu_fwd_bf16(
    uint4* __restrict__ h, const uint4* __restrict__ gate, const uint4* __restrict__ up, long long n8) {
    PDL_ENTRY();
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n8) return;
    float g[8], u[8];
    bf16x8_unpack(gate[i], g);
    bf16x8_unpack(up[i], u);
#pragma unroll
    for (int j = 0; j < 8; j++) g[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
    h[i] = bf16x8_pack(g);
}

// swiglu_bwd_bf16: dh, gate, up [n] bf16 -> dgate, dup [n] bf16; n8 = n/8.
extern "C" __global__ void __launch_bounds__(256) swiglu_bwd_bf16(
    uint4* __restrict__ dgate, uint4* __restrict__ dup, const uint4* __restrict__ dh, const uint4* __restrict__ gate,
    const uint4* __restrict__ up, long long n8) {
    PDL_ENTRY();
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n8) return;
    float d[8], g[8], u[8], dg[8], du[8];
    bf16x8_unpack(dh[i], d);
    bf16x8_unpack(gate[i], g);
    bf16x8_unpack(up[i], u);
#pragma unroll
    for (int j = 0; j < 8; j++) {
        const float sg = 1.0f / (1.0f + expf(-g[j]));
        du[j] = d[j] * g[j] * sg;
        dg[j] = d[j] * u[j] * sg * (1.0f + g[j] * (1.0f - sg));
    }
    dgate[i] = bf16x8_pack(dg);
    dup[i] = bf16x8_pack(du);
}
