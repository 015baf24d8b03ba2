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
#include "bf16x8.cuh"
#include "dropout.cuh"

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
    y[i] = bf16x8_add(a[i], dropout8(x[i], v, t, b, c8, tl, seed, p, scale));
}

// lora_dropout_add_bf16 is the backward of a LoRA branch's input with dropout, summed into the input's other
// gradient, without writing the branch's gradient: y = a + dropout(dxl), dxl = bf16(s * (g·A)) with g = dy·B
// [B*Tp, R] bf16 and A [R, C] bf16 (lora_A). dxl's fp32 sum runs over r = 0..R-1 in order (each product of two
// bf16 values is exact in fp32, so FMA or not gives the same sum), is scaled by s once and rounded once to bf16,
// as a GEMM with alpha = s writes it; then dropout_add_bf16's two roundings. y may be a.
// Grid (ceil(Tp/LDA_ROWS), ceil(c8/128), B), block 128: the thread handles the 8 columns c0 .. c0+7 of
// LDA_ROWS consecutive rows t of sequence b. With R a template constant (8, 16: lora_dropout_add_bf16_r8,
// _r16) the thread keeps its columns of A in registers and issues every row's loads of a and g before it
// computes; the generic kernel (any R) reads A through L1 per row.
#define LDA_ROWS 8

// lda_finish turns the 8 fp32 sums of row (t, b) into y = a + dropout(bf16(s * acc)).
__device__ __forceinline__ uint4 lda_finish(const float* acc, uint4 ua, unsigned int v, unsigned int t,
                                            unsigned int b, unsigned int c8, unsigned int tl,
                                            unsigned long long seed, float p, float scale, float s) {
    uint4 ux;
    __nv_bfloat162* hx = reinterpret_cast<__nv_bfloat162*>(&ux);
#pragma unroll
    for (int k = 0; k < 4; k++) hx[k] = __floats2bfloat162_rn(acc[2 * k] * s, acc[2 * k + 1] * s);
    return bf16x8_add(ua, dropout8(ux, v, t, b, c8, tl, seed, p, scale));
}

// lda_fma adds gv * (the 8 bf16 of ua) to acc.
__device__ __forceinline__ void lda_fma(float* acc, float gv, uint4 ua) {
    const __nv_bfloat162* ha = reinterpret_cast<const __nv_bfloat162*>(&ua);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        const float2 f = __bfloat1622float2(ha[k]);
        acc[2 * k] = fmaf(gv, f.x, acc[2 * k]);
        acc[2 * k + 1] = fmaf(gv, f.y, acc[2 * k + 1]);
    }
}

extern "C" __global__ void __launch_bounds__(128) lora_dropout_add_bf16(
    uint4* y, const uint4* a, const __nv_bfloat16* __restrict__ g, const uint4* __restrict__ A, unsigned int c8,
    unsigned int tp, unsigned int tl, unsigned long long seed, float p, float scale, float s, unsigned int R) {
    const unsigned int v = blockIdx.y * blockDim.x + threadIdx.x;
    if (v >= c8) return;
    const unsigned int b = blockIdx.z, t0 = blockIdx.x * LDA_ROWS;
    for (unsigned int t = t0; t < t0 + LDA_ROWS && t < tp; t++) {
        const unsigned long long n = (unsigned long long)b * tp + t, i = n * c8 + v;
        const __nv_bfloat16* gr = g + n * R;
        float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
        for (unsigned int r = 0; r < R; r++) lda_fma(acc, __bfloat162float(gr[r]), __ldg(A + (unsigned long long)r * c8 + v));
        y[i] = lda_finish(acc, a[i], v, t, b, c8, tl, seed, p, scale, s);
    }
}

// lda_rows is lora_dropout_add_bf16 for a compile-time R (a multiple of 8, so a row of g is R/8 uint4 loads).
// With F the thread's columns of A are widened to fp32 registers once (R*8 of them): each row's R*8 FMAs then
// need no conversions, which matters because at rank 8 this pass is nearly bound by instructions, not bytes.
template <int R, bool F>
__device__ __forceinline__ void lda_rows(uint4* y, const uint4* a, const uint4* __restrict__ g,
                                         const uint4* __restrict__ A, unsigned int c8, unsigned int tp,
                                         unsigned int tl, unsigned long long seed, float p, float scale, float s) {
    const unsigned int v = blockIdx.y * blockDim.x + threadIdx.x;
    if (v >= c8) return;
    const unsigned int b = blockIdx.z, t0 = blockIdx.x * LDA_ROWS;
    const unsigned int rows = min((unsigned int)LDA_ROWS, tp - t0);
    uint4 Ar[F ? 1 : R];
    float Af[F ? R : 1][8];
#pragma unroll
    for (int r = 0; r < R; r++) {
        const uint4 ua = __ldg(A + (unsigned long long)r * c8 + v);
        if (F) {
            const __nv_bfloat162* ha = reinterpret_cast<const __nv_bfloat162*>(&ua);
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const float2 f = __bfloat1622float2(ha[k]);
                Af[r][2 * k] = f.x;
                Af[r][2 * k + 1] = f.y;
            }
        } else {
            Ar[r] = ua;
        }
    }
    const unsigned long long n0 = (unsigned long long)b * tp + t0;
#pragma unroll
    for (int h = 0; h < LDA_ROWS; h += 4) {  // four rows' loads in flight, then their math
        uint4 ua[4], ug[4][R / 8];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            if (h + k < rows) {
                ua[k] = a[(n0 + h + k) * c8 + v];
#pragma unroll
                for (int q = 0; q < R / 8; q++) ug[k][q] = __ldg(g + (n0 + h + k) * (R / 8) + q);
            }
        }
#pragma unroll
        for (int k = 0; k < 4; k++) {
            if (h + k < rows) {
                float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
#pragma unroll
                for (int q = 0; q < R / 8; q++) {
                    const __nv_bfloat16* hg = reinterpret_cast<const __nv_bfloat16*>(&ug[k][q]);
#pragma unroll
                    for (int r = 0; r < 8; r++) {
                        const float gv = __bfloat162float(hg[r]);
                        if (F) {
#pragma unroll
                            for (int j = 0; j < 8; j++) acc[j] = fmaf(gv, Af[F ? 8 * q + r : 0][j], acc[j]);
                        } else {
                            lda_fma(acc, gv, Ar[F ? 0 : 8 * q + r]);
                        }
                    }
                }
                y[(n0 + h + k) * c8 + v] = lda_finish(acc, ua[k], v, t0 + h + k, b, c8, tl, seed, p, scale, s);
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(128) lora_dropout_add_bf16_r8(
    uint4* y, const uint4* a, const uint4* __restrict__ g, const uint4* __restrict__ A, unsigned int c8,
    unsigned int tp, unsigned int tl, unsigned long long seed, float p, float scale, float s) {
    lda_rows<8, true>(y, a, g, A, c8, tp, tl, seed, p, scale, s);
}

extern "C" __global__ void __launch_bounds__(128) lora_dropout_add_bf16_r16(
    uint4* y, const uint4* a, const uint4* __restrict__ g, const uint4* __restrict__ A, unsigned int c8,
    unsigned int tp, unsigned int tl, unsigned long long seed, float p, float scale, float s) {
    lda_rows<16, false>(y, a, g, A, c8, tp, tl, seed, p, scale, s);
}
