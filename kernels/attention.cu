// Causal GQA attention with a fused softmax, flash-style (FlashAttention-2 structure): the T x T score matrix
// never reaches global memory. bf16 operands on mma.sync.m16n8k16 tensor-core tiles, fp32 accumulation and
// softmax. The forward keeps the row logsumexp; the backward recomputes the probabilities from it.
//
// Layouts (token-major, as the q/k/v projections write them):
//   q, o, dq   [B, T, H, D]    bf16
//   k, v, dk, dv [B, T, KVH, D] bf16    (query head h reads kv head h / (H/KVH))
//   lse        [B, H, T]       fp32, base-2: lse2 = log2(sum_j 2^(s_j)), s = (q.k) * scale * log2(e)
//   kmask      [B, T]          int32 or null: position j of row b is padding when kmask[b*T+j] == 0; equal
//                              non-zero values mark one sequence of several packed into the row (segments,
//                              numbered in increasing order along the row; HF's 0/1 mask is one segment)
// Key j is visible to query i iff j <= i, kmask[j] != 0 and, unless query i is padding, kmask[j] == kmask[i]
// (att_vis). A query that sees no key gets o = 0, lse = -inf. Query blocks of a packed row skip the key
// tiles before their first segment (att_first_tile), so a packed row costs what its sequences cost apart.
// D is a template parameter (16, 32, 64, 128 instantiated); T is any length (tiles are zero-padded).
// Dynamic shared memory: forward ATT_FWD_SMEM(D), backward ATT_BWD_SMEM(D) bytes (gpu/ops/attention.go has the same
// formulas; both above 48 KB at D=128, so the launcher raises the kernels' limit).
#include "attention.cuh"

// Dynamic shared memory of the forward kernel: K and V tiles, two stages each, and the tiles' key flags.
#define ATT_FWD_SMEM(D) (2 * 2 * ATT_BN * ((D) + 8) * 2 + 2 * ATT_BN * 4)

// Forward. grid (ceil(T/64), H, B), block 128, dynamic shared memory ATT_FWD_SMEM(D) bytes. Heavier (later)
// query blocks are scheduled first. K/V tiles are double-buffered: tile kb+1 loads (cp.async) while tile kb
// is computed.
template <int D>
__device__ void att_fwd(__nv_bfloat16* __restrict__ o, float* __restrict__ lse, const __nv_bfloat16* __restrict__ q,
                        const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v,
                        const int* __restrict__ kmask, int T, int H, int KVH, float scale) {
    extern __shared__ __align__(16) unsigned char att_smem[];
    __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(att_smem);  // [2][64][D+8]
    __nv_bfloat16* Vs = Ks + 2 * ATT_BN * (D + 8);                    // [2][64][D+8]
    int* Ms = reinterpret_cast<int*>(Vs + 2 * ATT_BN * (D + 8));      // [2][64] key segments (att_seg)
    __shared__ int red[2];
    const int qb = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (H / KVH);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3, mi = lane >> 3;
    const long long qstride = (long long)H * D, kstride = (long long)KVH * D;
    const __nv_bfloat16* qb0 = q + (long long)b * T * qstride + (long long)h * D;
    const __nv_bfloat16* kb0 = k + (long long)b * T * kstride + (long long)kvh * D;
    const __nv_bfloat16* vb0 = v + (long long)b * T * kstride + (long long)kvh * D;
    const int* km = kmask == nullptr ? nullptr : kmask + (long long)b * T;
    const int r0 = qb * ATT_BM + warp * 16 + g, r1 = r0 + 8;  // this thread's two query rows
    const float scaleLog2 = scale * ATT_LOG2E;

    // The block's query segments; causal: key tiles kf..qb (ATT_BM == ATT_BN), kf past the tiles no query of
    // the block can see (a packed row's earlier sequences).
    int qlo, qhi;
    att_seg_range(qb * ATT_BM, ATT_BM, T, km, red, qlo, qhi);
    const int kf = att_first_tile(min(qb * ATT_BM + ATT_BM, T) - 1, T, km, qlo, qhi, red);
    const int mq0 = att_seg(r0, T, km), mq1 = att_seg(r1, T, km);
    const int nkb = qb + 1;
    auto issue = [&](int kb) {
        const int st = (kb - kf) & 1;
        att_load_tile<D, ATT_BN>(Ks + st * ATT_BN * (D + 8), kb0, kstride, kb * ATT_BN, T);
        att_load_tile<D, ATT_BN>(Vs + st * ATT_BN * (D + 8), vb0, kstride, kb * ATT_BN, T);
        att_cp_commit();
        if (threadIdx.x < ATT_BN) Ms[st * ATT_BN + threadIdx.x] = att_seg(kb * ATT_BN + threadIdx.x, T, km);
    };
    issue(kf);

    // Q as A fragments, straight from global memory (rows past T are zero).
    unsigned qa[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        const int c = kk * 16 + t * 2;
        qa[kk][0] = r0 < T ? att_ld32(qb0 + r0 * qstride + c) : 0u;
        qa[kk][1] = r1 < T ? att_ld32(qb0 + r1 * qstride + c) : 0u;
        qa[kk][2] = r0 < T ? att_ld32(qb0 + r0 * qstride + c + 8) : 0u;
        qa[kk][3] = r1 < T ? att_ld32(qb0 + r1 * qstride + c + 8) : 0u;
    }
    float acc[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
    float m0 = -CUDART_INF_F, m1 = -CUDART_INF_F, l0 = 0.f, l1 = 0.f;

    for (int kb = kf; kb < nkb; kb++) {
        const int st = (kb - kf) & 1;
        if (kb + 1 < nkb) {
            issue(kb + 1);  // its stage was last read in iteration kb-1, which ended with a barrier
            att_cp_wait<1>();
        } else {
            att_cp_wait<0>();
        }
        // Barrier (tile kb visible to all) that also tells whether every key of the tile is visible to every
        // query row of the block (one segment for all of them), so that the mask can be skipped.
        const bool full = __syncthreads_and(threadIdx.x >= ATT_BN || Ms[st * ATT_BN + threadIdx.x] == qlo) &&
                          qlo == qhi && qlo != 0 && kb < qb;
        const __nv_bfloat16* Kt = Ks + st * ATT_BN * (D + 8);
        const __nv_bfloat16* Vt = Vs + st * ATT_BN * (D + 8);
        const int* Mt = Ms + st * ATT_BN;
        float s[ATT_BN / 8][4];
#pragma unroll
        for (int j = 0; j < ATT_BN / 8; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
            for (int jp = 0; jp < ATT_BN / 16; jp++) {
                // K^T fragments of key tiles 2jp, 2jp+1: matrices (keys 0-7|8-15 of the pair) x (d 0-7|8-15).
                unsigned bk[4];
                att_ldsm(bk, Kt + ((2 * jp + (mi >> 1)) * 8 + (lane & 7)) * (D + 8) + kk * 16 + (mi & 1) * 8);
                att_mma(s[2 * jp], qa[kk], bk[0], bk[1]);
                att_mma(s[2 * jp + 1], qa[kk], bk[2], bk[3]);
            }
        }
        // Scale into the base-2 domain, mask, and take the row maxima (rows r0: s[.][0..1], r1: s[.][2..3]).
        float mx0 = -CUDART_INF_F, mx1 = -CUDART_INF_F;
#pragma unroll
        for (int j = 0; j < ATT_BN / 8; j++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                s[j][e] *= scaleLog2;
                s[j][2 + e] *= scaleLog2;
                if (!full) {
                    const int cl = j * 8 + t * 2 + e, c = kb * ATT_BN + cl;
                    if (!att_vis(c, Mt[cl], r0, mq0)) s[j][e] = -CUDART_INF_F;
                    if (!att_vis(c, Mt[cl], r1, mq1)) s[j][2 + e] = -CUDART_INF_F;
                }
                mx0 = fmaxf(mx0, s[j][e]);
                mx1 = fmaxf(mx1, s[j][2 + e]);
            }
        }
#pragma unroll
        for (int off = 1; off < 4; off <<= 1) {
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
        }
        const float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
        // Reference points that stay finite while a row has seen no visible key yet.
        const float u0 = n0 == -CUDART_INF_F ? 0.f : n0, u1 = n1 == -CUDART_INF_F ? 0.f : n1;
        const float al0 = exp2f(m0 - u0), al1 = exp2f(m1 - u1);
        m0 = n0;
        m1 = n1;
        l0 *= al0;
        l1 *= al1;
#pragma unroll
        for (int j = 0; j < D / 8; j++) {
            acc[j][0] *= al0;
            acc[j][1] *= al0;
            acc[j][2] *= al1;
            acc[j][3] *= al1;
        }
        unsigned pa[ATT_BN / 16][4];  // P as A fragments, keys along k
#pragma unroll
        for (int j = 0; j < ATT_BN / 8; j++) {
            const float p0 = exp2f(s[j][0] - u0), p1 = exp2f(s[j][1] - u0);
            const float p2 = exp2f(s[j][2] - u1), p3 = exp2f(s[j][3] - u1);
            l0 += p0 + p1;
            l1 += p2 + p3;
            pa[j / 2][(j & 1) * 2 + 0] = att_pack(p0, p1);
            pa[j / 2][(j & 1) * 2 + 1] = att_pack(p2, p3);
        }
        // O += P V. V^T fragments by transposed ldmatrix: matrices (keys 0-7|8-15) x (d 0-7|8-15).
#pragma unroll
        for (int kk = 0; kk < ATT_BN / 16; kk++) {
#pragma unroll
            for (int dp = 0; dp < D / 16; dp++) {
                unsigned bv[4];
                att_ldsm_t(bv, Vt + (kk * 16 + (mi & 1) * 8 + (lane & 7)) * (D + 8) + dp * 16 + (mi >> 1) * 8);
                att_mma(acc[2 * dp], pa[kk], bv[0], bv[1]);
                att_mma(acc[2 * dp + 1], pa[kk], bv[2], bv[3]);
            }
        }
        __syncthreads();  // stage st fully read before iteration kb+1 refills it
    }
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
        l0 += __shfl_xor_sync(0xffffffffu, l0, off);
        l1 += __shfl_xor_sync(0xffffffffu, l1, off);
    }
    const float i0 = l0 > 0.f ? 1.f / l0 : 0.f, i1 = l1 > 0.f ? 1.f / l1 : 0.f;
    __nv_bfloat16* ob0 = o + (long long)b * T * qstride + (long long)h * D;
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
        const int c = j * 8 + t * 2;
        if (r0 < T) *reinterpret_cast<unsigned*>(ob0 + r0 * qstride + c) = att_pack(acc[j][0] * i0, acc[j][1] * i0);
        if (r1 < T) *reinterpret_cast<unsigned*>(ob0 + r1 * qstride + c) = att_pack(acc[j][2] * i1, acc[j][3] * i1);
    }
    if (t == 0) {
        float* lb = lse + ((long long)b * H + h) * T;
        if (r0 < T) lb[r0] = l0 > 0.f ? m0 + log2f(l0) : -CUDART_INF_F;
        if (r1 < T) lb[r1] = l1 > 0.f ? m1 + log2f(l1) : -CUDART_INF_F;
    }
}

#define ATT_FWD(D)                                                                                                 \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS) attention_fwd_d##D(                                  \
        __nv_bfloat16* o, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,   \
        const int* kmask, long long T, long long H, long long KVH, float scale) {                                  \
        att_fwd<D>(o, lse, q, k, v, kmask, (int)T, (int)H, (int)KVH, scale);                                      \
    }
ATT_FWD(16)
ATT_FWD(32)
ATT_FWD(64)
ATT_FWD(128)

