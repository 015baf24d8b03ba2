// A LoRA linear's rank-r products by tensor cores, reading the [N, C] activation once (CPU twins: model's
// LoRAGradOp 'A' and 'B' and LinearOp's LoRA branch; the reference in gpu/ops/lora_grad_test.go). With
// dy [N, out], h = xl·Aᵀ [N, r], g = dy·B [N, r]:
//   dB = s·dyᵀ·h [out, r] and g = dy·B   — one walk over dy (X = dy, Y = h, Bm = B);
//   dA = s·gᵀ·xl [r, in]                  — one walk over xl (X = xl, Y = g, no Bm);
//   h = xl·Aᵀ                             — one walk over xl (X = xl, Bm = lora_A transposed, no Y).
// xl may be LoRA dropout's input instead, dropped as it is read. lora_grad_partial_r<R>[_g|_h][_d] writes
// fp32 partial sums per block (P1 = Xᵀ·Y per row chunk, P2 = X·Bm per column block); lora_grad_reduce adds
// them in a fixed order (deterministic) and writes g or h (bf16) and dW (fp32, scaled). cuBLAS's skinny GEMMs
// for the same products each read all of dy or xl.
#include <cuda_bf16.h>
#include "attention.cuh"  // att_mma, att_ldsm, att_ldsm_t, att_cp16, att_cp_commit, att_cp_wait
#include "dropout.cuh"

#define LG_TR 32       // rows per tile
#define LG_CB 256      // columns per block (32 per warp)
#define LG_XS 264      // smem row stride of an X tile, bf16 (LG_CB + 8: ldmatrix rows on distinct banks)
#define LG_STAGES 3    // X/Y tiles in flight (cp.async)
#define LG_THREADS 256 // 8 warps

// lg_ldsm_t2 loads two transposed 8x8 bf16 matrices; lanes 0-15 give the rows.
__device__ __forceinline__ void lg_ldsm_t2(unsigned* r, const __nv_bfloat16* p) {
    const unsigned addr = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(addr));
}

__device__ __forceinline__ unsigned lg_pack(__nv_bfloat16 lo, __nv_bfloat16 hi) {
    return (unsigned)__bfloat16_as_ushort(lo) | ((unsigned)__bfloat16_as_ushort(hi) << 16);
}

// LG_YS(R) is the smem row stride of a Y tile in bf16: 16 bytes at R = 8, 48 at R = 16 (8 rows of a
// transposed ldmatrix on distinct banks).
#define LG_YS(R) ((R) == 8 ? 8 : 24)
#define LG_SMEM(R, G) \
    (LG_STAGES * LG_TR * (LG_XS + LG_YS(R)) * 2 + ((G) ? 2 * (LG_THREADS / 32) * LG_TR * (R) * 4 : 0))

// Step 1, partial sums over a block's rectangle: columns [256·bx, +256) of X and rows [rb·by, +rb), walked in
// tiles of 32 rows through a 3-stage cp.async pipeline. Warp w owns columns 32w.. of the block. With p > 0,
// X is read through LoRA dropout: each mma operand fragment is dropped in registers as it is loaded
// (dropout2_weyl, the mask of dropout_bf16 for the element at flat index n·C + c), so the products see exactly the bf16
// values dropout_bf16 would have written, and the hashing overlaps the tensor-core work.
//   p1 [gridDim.y, C, R] fp32: p1[by][c][r] = Σ_{n in the block's rows} X[n][c]·Y[n][r]   (P1)
//   p2 [gridDim.x, N, R] fp32: p2[bx][n][r] = Σ_{c in the block's columns} X[n][c]·Bm[c][r] (G only; the 8
//   warps' sums of a tile are added in smem in warp order during the next tile, Red double-buffered)
// x [N, C] bf16 (C % 8 == 0); y [N, R] bf16 (P1); bm [C, R] bf16, or [R, C] with bmT (G). grid (⌈C/256⌉,
// ⌈N/rb⌉), block 256, dynamic shared memory LG_SMEM(R, G).
template <int R, bool P1, bool G, bool DROP>
__device__ void lora_grad_partial(float* __restrict__ p1, float* __restrict__ p2, const __nv_bfloat16* __restrict__ x,
                                  const __nv_bfloat16* __restrict__ y, const __nv_bfloat16* __restrict__ bm, int N,
                                  int C, int rb, bool bmT, unsigned long long seed, float p, float scale) {
    constexpr int YS = LG_YS(R), J = R / 8;
    extern __shared__ __align__(16) unsigned char lg_smem[];
    __nv_bfloat16* Xs = reinterpret_cast<__nv_bfloat16*>(lg_smem);  // [STAGES][TR][XS]
    __nv_bfloat16* Ys = Xs + LG_STAGES * LG_TR * LG_XS;              // [STAGES][TR][YS]
    float* Red = reinterpret_cast<float*>(Ys + LG_STAGES * LG_TR * YS);  // [2][8][TR][R] (G)
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3, mi = lane >> 3;
    const int c0 = blockIdx.x * LG_CB, n0 = blockIdx.y * rb, n1 = min(N, n0 + rb);
    const int tiles = (n1 - n0 + LG_TR - 1) / LG_TR;
    const int wc = warp * 32;  // the warp's first column within the block

    auto issue = [&](int k) {
        if (k < tiles) {
            const int st = k % LG_STAGES, r0 = n0 + k * LG_TR;
            __nv_bfloat16* xs = Xs + st * LG_TR * LG_XS;
            for (int i = threadIdx.x; i < LG_TR * (LG_CB / 8); i += LG_THREADS) {  // 16-byte pieces
                const int r = i / (LG_CB / 8), c = (i % (LG_CB / 8)) * 8;
                const bool ok = r0 + r < n1 && c0 + c < C;
                att_cp16(xs + r * LG_XS + c, x + (ok ? (long long)(r0 + r) * C + c0 + c : 0), ok);
            }
            __nv_bfloat16* ys = Ys + st * LG_TR * YS;
            if (P1 && threadIdx.x < LG_TR * (R / 8)) {
                const int r = threadIdx.x / (R / 8), c = (threadIdx.x % (R / 8)) * 8;
                const bool ok = r0 + r < n1;
                att_cp16(ys + r * YS + c, y + (ok ? (long long)(r0 + r) * R + c : 0), ok);
            }
        }
        att_cp_commit();  // an empty group past the last tile keeps the wait counts uniform
    };

    // reduce_red adds the 8 warps' P2 sums of tile k (Red[k & 1]) in warp order and writes them to p2.
    auto reduce_red = [&](int k) {
        const float* red = Red + (k & 1) * (LG_THREADS / 32) * LG_TR * R;
        const int r0 = n0 + k * LG_TR;
        for (int i = threadIdx.x; i < LG_TR * R; i += LG_THREADS) {
            float s = 0.f;
#pragma unroll
            for (int w = 0; w < LG_THREADS / 32; w++) s += red[w * LG_TR * R + i];
            if (r0 + i / R < n1) p2[((long long)blockIdx.x * N + r0 + i / R) * R + i % R] = s;
        }
    };

    unsigned bf[2][J][2];  // Bm as mma B fragments for the warp's two 16-column steps (G)
    if (G) {
#pragma unroll
        for (int ks = 0; ks < 2; ks++)
#pragma unroll
            for (int j = 0; j < J; j++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const int c = c0 + wc + ks * 16 + h * 8 + 2 * t, r = j * 8 + g;
                    const __nv_bfloat16 z = __float2bfloat16(0.f);
                    const long long i0 = bmT ? (long long)r * C + c : (long long)c * R + r, i1 = bmT ? i0 + 1 : i0 + R;
                    bf[ks][j][h] = lg_pack(c < C ? bm[i0] : z, c < C ? bm[i1] : z);
                }
    }
    float acc1[2][J][4];  // P1: [16-column step][8-wide r tile][mma accumulator]
#pragma unroll
    for (int ks = 0; ks < 2; ks++)
#pragma unroll
        for (int j = 0; j < J; j++) acc1[ks][j][0] = acc1[ks][j][1] = acc1[ks][j][2] = acc1[ks][j][3] = 0.f;

    // The dropout mask's Weyl constants and threshold (p > 0): every flat index n·C + c is below 2^32 (the
    // launcher checks), so one (m, k) serves them all.
    const bool drop = DROP && p > 0.f;
    unsigned int wm = 0, wk = 0, keep_from = 0;
    if (drop) {
        dropout_weyl(seed, 0, wm, wk);
        keep_from = dropout_keep_from(p);
    }
#pragma unroll
    for (int k = 0; k < LG_STAGES - 1; k++) issue(k);
    for (int k = 0; k < tiles; k++) {
        issue(k + LG_STAGES - 1);  // into the stage read in iteration k-1 (every thread is past its barrier)
        att_cp_wait<LG_STAGES - 1>();
        __syncthreads();
        if (G && k > 0) reduce_red(k - 1);  // Red[(k-1) & 1] is next written in iteration k+1, after a barrier
        const int st = k % LG_STAGES;
        const __nv_bfloat16* xs = Xs + st * LG_TR * LG_XS;
        const __nv_bfloat16* ys = Ys + st * LG_TR * YS;
        float acc2[2][J][4];  // P2 of this tile: [16-row group][r tile][accumulator]
#pragma unroll
        for (int rg = 0; rg < 2; rg++) {
            // Y rows rg·16.. as B fragments (k = rows, n = r): matrices (rows +0/+8) × (r tile j).
            unsigned yb[4];
            const __nv_bfloat16* yp = ys + (rg * 16 + (mi & 1) * 8 + (lane & 7)) * YS + (mi >> 1) * 8;
            if (!P1) {
            } else if (J == 1) {
                lg_ldsm_t2(yb, yp);  // R = 8: the r tile's two matrices only (lanes 16-31 unused)
            } else {
                att_ldsm_t(yb, yp);
            }
#pragma unroll
            for (int j = 0; j < J; j++) acc2[rg][j][0] = acc2[rg][j][1] = acc2[rg][j][2] = acc2[rg][j][3] = 0.f;
#pragma unroll
            for (int ks = 0; ks < 2; ks++) {
                const int cb = wc + ks * 16;
                const unsigned r0g = (unsigned)(n0 + k * LG_TR + rg * 16), c0g = (unsigned)(c0 + cb);  // global
                if (P1) {
                    unsigned at[4];  // Xᵀ [16 columns × 16 rows] as an A fragment
                    att_ldsm_t(at, xs + (rg * 16 + (mi >> 1) * 8 + (lane & 7)) * LG_XS + cb + (mi & 1) * 8);
                    if (drop) {  // register e holds rows r, r+1 of column c: flat indices j and j + C
#pragma unroll
                        for (int e = 0; e < 4; e++)
                            at[e] = dropout2_weyl(
                                at[e], ((r0g + (e >> 1) * 8 + 2 * t) * (unsigned)C + c0g + (e & 1) * 8 + g) * wm + wk,
                                (unsigned)C, wm, keep_from, scale);
                    }
#pragma unroll
                    for (int j = 0; j < J; j++) att_mma(acc1[ks][j], at, yb[2 * j], yb[2 * j + 1]);
                }
                if (G) {
                    unsigned a[4];  // X [16 rows × 16 columns] as an A fragment
                    att_ldsm(a, xs + (rg * 16 + (mi & 1) * 8 + (lane & 7)) * LG_XS + cb + (mi >> 1) * 8);
                    if (drop) {  // register e holds columns c, c+1 of row r: flat indices j and j + 1
#pragma unroll
                        for (int e = 0; e < 4; e++)
                            a[e] = dropout2_weyl(
                                a[e], ((r0g + (e & 1) * 8 + g) * (unsigned)C + c0g + (e >> 1) * 8 + 2 * t) * wm + wk, 1u,
                                wm, keep_from, scale);
                    }
#pragma unroll
                    for (int j = 0; j < J; j++) att_mma(acc2[rg][j], a, bf[ks][j][0], bf[ks][j][1]);
                }
            }
        }
        if (G) {  // this tile's per-warp sums into Red[k & 1], added across warps in the next iteration
            float* red = Red + ((k & 1) * (LG_THREADS / 32) + warp) * LG_TR * R;
#pragma unroll
            for (int rg = 0; rg < 2; rg++)
#pragma unroll
                for (int j = 0; j < J; j++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        red[(rg * 16 + g + (e >> 1) * 8) * R + j * 8 + 2 * t + (e & 1)] = acc2[rg][j][e];
        }
        __syncthreads();  // stage st fully read before it is refilled; Red[k & 1] complete
    }
    if (G && tiles > 0) reduce_red(tiles - 1);
    att_cp_wait<0>();
    if (P1) {  // this block's P1 partials
#pragma unroll
        for (int ks = 0; ks < 2; ks++)
#pragma unroll
            for (int j = 0; j < J; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int c = c0 + wc + ks * 16 + g + (e >> 1) * 8;
                    if (c < C) p1[((long long)blockIdx.y * C + c) * R + j * 8 + 2 * t + (e & 1)] = acc1[ks][j][e];
                }
    }
}

// Entry points: _r<R> (P1: dA = Xᵀ·g with X = xl), _r<R>_g (P1 and G: dB and g = dy·B from dy), _r<R>_h (G
// only: h = X·Aᵀ with bm = lora_A [R, C], bmT); with _d, X is dropped as read (p > 0). Every entry takes the
// same arguments; the ones it does not use may be null.
#define LORA_GRAD_ENTRY(R, NAME, P1, G, DROP)                                                                    \
    extern "C" __global__ void __launch_bounds__(LG_THREADS) NAME(                                               \
        float* p1, float* p2, const __nv_bfloat16* x, const __nv_bfloat16* y, const __nv_bfloat16* bm,          \
        long long N, long long C, long long rb, long long bmT, unsigned long long seed, float p, float scale) {   \
        lora_grad_partial<R, P1, G, DROP>(p1, p2, x, y, bm, (int)N, (int)C, (int)rb, bmT != 0, seed, p, scale); \
    }
#define LORA_GRAD_PARTIAL(R)                                             \
    LORA_GRAD_ENTRY(R, lora_grad_partial_r##R, true, false, false)       \
    LORA_GRAD_ENTRY(R, lora_grad_partial_r##R##_d, true, false, true)    \
    LORA_GRAD_ENTRY(R, lora_grad_partial_r##R##_g, true, true, false)    \
    LORA_GRAD_ENTRY(R, lora_grad_partial_r##R##_h, false, true, false)   \
    LORA_GRAD_ENTRY(R, lora_grad_partial_r##R##_h_d, false, true, true)
LORA_GRAD_PARTIAL(8)
LORA_GRAD_PARTIAL(16)

// lg_sum is Σ_b p[b·stride] for b < n: four running sums (b mod 4) so that four loads are in flight, then
// added in a fixed order (the result does not depend on timing).
__device__ __forceinline__ float lg_sum(const float* __restrict__ p, long long stride, long long n) {
    float s[4] = {0.f, 0.f, 0.f, 0.f};
    long long b = 0;
    for (; b + 4 <= n; b += 4) {
#pragma unroll
        for (int k = 0; k < 4; k++) s[k] += p[(b + k) * stride];
    }
    for (int k = 0; b < n; b++, k++) s[k] += p[b * stride];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

// Step 2: the partials added (lg_sum), by many threads at once. Threads [0, N·R) write
// g[n][r] = bf16(Σ_bx p2[bx][n][r]) (when g is not null); threads [N·R, N·R + C·R) write dW = alpha·Σ_by
// p1[by][c][r] (when dw is not null), at [c][r] (dB, [C, R]) or, with transpose, at [r][c] (dA, [R, C]).
// g [N, R] bf16; p2 [nx, N, R] fp32; dw [C, R] or [R, C] fp32; p1 [ny, C, R] fp32. grid ⌈(N·R + C·R)/256⌉,
// block 256.
extern "C" __global__ void __launch_bounds__(256) lora_grad_reduce(
    __nv_bfloat16* __restrict__ gout, const float* __restrict__ p2, long long nx, long long N,
    float* __restrict__ dw, const float* __restrict__ p1, long long ny, long long C, long long R,
    long long transpose, float alpha) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long nr = gout != nullptr ? N * R : 0;
    if (i < nr) {
        gout[i] = __float2bfloat16(lg_sum(p2 + i, N * R, nx));
        return;
    }
    i -= nr;
    if (dw == nullptr || i >= C * R) return;
    const long long c = i / R, r = i % R;
    dw[transpose ? r * C + c : i] = alpha * lg_sum(p1 + i, C * R, ny);
}
