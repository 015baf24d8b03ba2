// Causal GQA attention with a fused softmax, flash-style (FlashAttention-2 structure): the T x T score matrix
// never reaches global memory. bf16 operands on mma.sync.m16n8k16 tensor-core tiles, fp32 accumulation and
// softmax. The forward keeps the row logsumexp; the backward recomputes the probabilities from it.
//
// Layouts (token-major, as the q/k/v projections write them):
//   q, o, dq   [B, T, H, D]    bf16
//   k, v, dk, dv [B, T, KVH, D] bf16    (query head h reads kv head h / (H/KVH))
//   lse        [B, H, T]       fp32, base-2: lse2 = log2(sum_j 2^(s_j)), s = (q.k) * scale * log2(e)
//   kmask      [B, T]          int32 or null: key j of sequence b is attended to only if kmask[b*T+j] != 0
// Key j is visible to query i iff j <= i and kmask allows it. A query that sees no key gets o = 0, lse = -inf.
// D is a template parameter (16, 32, 64, 128 instantiated); T is any length (tiles are zero-padded).
// Dynamic shared memory: forward ATT_FWD_SMEM(D), backward ATT_BWD_SMEM(D) bytes (gpu/attention.go has the same
// formulas; both above 48 KB at D=128, so the launcher raises the kernels' limit).
#include <cuda_bf16.h>
#include <math_constants.h>

#define ATT_WARPS 4
#define ATT_THREADS (ATT_WARPS * 32)
#define ATT_BM 64  // forward: queries per block (16 per warp)
#define ATT_BN 64  // keys per tile (forward) and per block (backward, 16 per warp)
#define ATT_BQ 32  // backward: queries per inner tile
#define ATT_LOG2E 1.4426950408889634f

__device__ __forceinline__ void att_mma(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// att_ldsm_t loads four transposed 8x8 bf16 matrices from shared memory; lane l supplies the address of row
// (l & 7) of matrix (l >> 3).
__device__ __forceinline__ void att_ldsm_t(unsigned* r, const __nv_bfloat16* p) {
    const unsigned addr = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

__device__ __forceinline__ unsigned att_pack(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&h);
}

__device__ __forceinline__ unsigned att_ld32(const __nv_bfloat16* p) { return *reinterpret_cast<const unsigned*>(p); }

// att_ldsm loads four 8x8 bf16 matrices from shared memory (not transposed); lane l supplies the address of
// row (l & 7) of matrix (l >> 3). Thread l receives row l/4, columns 2(l%4), 2(l%4)+1 of each matrix.
__device__ __forceinline__ void att_ldsm(unsigned* r, const __nv_bfloat16* p) {
    const unsigned addr = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// att_cp16 copies 16 bytes from global to shared memory asynchronously (cp.async), or writes 16 zero bytes
// when valid is false (src-size 0: nothing is read).
__device__ __forceinline__ void att_cp16(void* s, const void* g, bool valid) {
    const unsigned addr = (unsigned)__cvta_generic_to_shared(s);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(g), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void att_cp_commit() { asm volatile("cp.async.commit_group;\n"); }
template <int N>
__device__ __forceinline__ void att_cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// att_load_tile copies rows [r0, r0+ROWS) of a [T, stride] bf16 matrix (columns [0, D)) into smem [ROWS][D+8]
// with cp.async, zero-filling rows at or past T. The caller commits and waits.
template <int D, int ROWS>
__device__ __forceinline__ void att_load_tile(__nv_bfloat16* s, const __nv_bfloat16* g, long long stride, int r0,
                                              int T) {
    constexpr int VPR = D / 8;  // 16-byte vectors per row
    for (int i = threadIdx.x; i < ROWS * VPR; i += ATT_THREADS) {
        const int r = i / VPR, c = (i % VPR) * 8;
        const bool ok = r0 + r < T;
        att_cp16(s + r * (D + 8) + c, g + (ok ? (long long)(r0 + r) * stride + c : 0), ok);
    }
}

// att_key_ok is 1 when key j of the sequence exists and is not padding.
__device__ __forceinline__ int att_key_ok(int key, int T, const int* km) {
    return key < T && (km == nullptr || km[key] != 0);
}

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
    int* Ms = reinterpret_cast<int*>(Vs + 2 * ATT_BN * (D + 8));      // [2][64] key flags (att_key_ok)
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

    const int nkb = qb + 1;  // causal: key tiles 0..qb (ATT_BM == ATT_BN)
    auto issue = [&](int kb) {
        const int st = kb & 1;
        att_load_tile<D, ATT_BN>(Ks + st * ATT_BN * (D + 8), kb0, kstride, kb * ATT_BN, T);
        att_load_tile<D, ATT_BN>(Vs + st * ATT_BN * (D + 8), vb0, kstride, kb * ATT_BN, T);
        att_cp_commit();
        if (threadIdx.x < ATT_BN) Ms[st * ATT_BN + threadIdx.x] = att_key_ok(kb * ATT_BN + threadIdx.x, T, km);
    };
    issue(0);

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

    for (int kb = 0; kb < nkb; kb++) {
        const int st = kb & 1;
        if (kb + 1 < nkb) {
            issue(kb + 1);  // its stage was last read in iteration kb-1, which ended with a barrier
            att_cp_wait<1>();
        } else {
            att_cp_wait<0>();
        }
        // Barrier (tile kb visible to all) that also tells whether every key of the tile is visible to every
        // query row of the block, so that the mask can be skipped.
        const bool full = __syncthreads_and(threadIdx.x >= ATT_BN || Ms[st * ATT_BN + threadIdx.x] != 0) && kb < qb;
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
                    const bool ok = Mt[cl] != 0;
                    if (!(ok && c <= r0)) s[j][e] = -CUDART_INF_F;
                    if (!(ok && c <= r1)) s[j][2 + e] = -CUDART_INF_F;
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

// Backward, step 1: delta[b,h,i] = sum_d dO[b,i,h,d] * O[b,i,h,d] (fp32), and zero the fp32 gradient
// accumulators (dq [B,T,H,D]; dk, dv [B,T,KVH,D]). One warp per (token, head); grid ceil(B*T*H / 4), block 128.
// delta [B, H, T] fp32; o, dout [B, T, H, D] bf16; dqacc [B, T, H, D] fp32; dkacc, dvacc [B, T, KVH, D] fp32.
extern "C" __global__ void __launch_bounds__(128) attention_bwd_pre(
    float* __restrict__ delta, float* __restrict__ dqacc, float* __restrict__ dkacc, float* __restrict__ dvacc,
    const __nv_bfloat16* __restrict__ o, const __nv_bfloat16* __restrict__ dout, long long B, long long T,
    long long H, long long KVH, long long D) {
    const long long row = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;  // (b*T + i)*H + h
    const int lane = threadIdx.x & 31;
    if (row >= B * T * H) return;
    const long long h = row % H, bi = row / H, i = bi % T, b = bi / T;
    float s = 0.f;
    for (long long d = lane; d < D; d += 32) {
        s += __bfloat162float(o[row * D + d]) * __bfloat162float(dout[row * D + d]);
        dqacc[row * D + d] = 0.f;
    }
    if (h < KVH) {
        const long long kr = bi * KVH + h;
        for (long long d = lane; d < D; d += 32) dkacc[kr * D + d] = dvacc[kr * D + d] = 0.f;
    }
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) delta[(b * H + h) * T + i] = s;
}

// Backward, step 2 (FlashAttention-2 order: a block owns 64 keys of one query head and walks the query tiles
// that can see them). Per tile of 32 queries, recompute P^T = 2^(S^T - lse2), then
//   dV += P^T dO,  dP^T = V dO^T,  dS^T = P^T * (dP^T - delta),  dK += scale * dS^T Q,  dQ += scale * dS K.
// dK, dV and dQ are added atomically to the fp32 accumulators (query heads of a group share dK, dV; key
// blocks share dQ). Q/dO tiles are double-buffered (cp.async). grid (ceil(T/64), H, B), block 128, dynamic
// shared memory ATT_BWD_SMEM(D) bytes.
#define ATT_BWD_SMEM(D) \
    ((ATT_BN * ((D) + 8) + 2 * 2 * ATT_BQ * ((D) + 8) + ATT_BQ * (ATT_BN + 8)) * 2 + (2 * 2 * ATT_BQ + ATT_BN) * 4)
template <int D>
__device__ void att_bwd(float* __restrict__ dqacc, float* __restrict__ dkacc, float* __restrict__ dvacc,
                        const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                        const __nv_bfloat16* __restrict__ v, const __nv_bfloat16* __restrict__ dout,
                        const float* __restrict__ lse, const float* __restrict__ delta, const int* __restrict__ kmask,
                        int T, int H, int KVH, float scale) {
    extern __shared__ __align__(16) unsigned char att_smem[];
    __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(att_smem);  // [64][D+8]
    __nv_bfloat16* Qs = Ks + ATT_BN * (D + 8);                        // [2][32][D+8]
    __nv_bfloat16* dOs = Qs + 2 * ATT_BQ * (D + 8);                   // [2][32][D+8]
    __nv_bfloat16* dSs = dOs + 2 * ATT_BQ * (D + 8);                  // [32][64+8], dS (query-major)
    float* Ls = reinterpret_cast<float*>(dSs + ATT_BQ * (ATT_BN + 8));  // [2][32] lse2 of the tile
    float* Dl = Ls + 2 * ATT_BQ;                                        // [2][32] delta of the tile
    int* Ms = reinterpret_cast<int*>(Dl + 2 * ATT_BQ);                  // [64] key flags (att_key_ok)
    const int kb = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (H / KVH);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3, mi = lane >> 3;
    const long long qstride = (long long)H * D, kstride = (long long)KVH * D;
    const __nv_bfloat16* qb0 = q + (long long)b * T * qstride + (long long)h * D;
    const __nv_bfloat16* db0 = dout + (long long)b * T * qstride + (long long)h * D;
    const __nv_bfloat16* kb0 = k + (long long)b * T * kstride + (long long)kvh * D;
    const __nv_bfloat16* vb0 = v + (long long)b * T * kstride + (long long)kvh * D;
    const float* lb = lse + ((long long)b * H + h) * T;
    const float* deb = delta + ((long long)b * H + h) * T;
    const int* km = kmask == nullptr ? nullptr : kmask + (long long)b * T;
    const float scaleLog2 = scale * ATT_LOG2E;
    const int kl0 = warp * 16 + g;                   // this thread's key rows within the block: kl0, kl0+8
    const int k0 = kb * ATT_BN + kl0, k1 = k0 + 8;  // and in the sequence
    const int qt0 = kb * ATT_BN / ATT_BQ, nqt = (T + ATT_BQ - 1) / ATT_BQ;

    auto issue = [&](int qt) {
        const int st = (qt - qt0) & 1, q0 = qt * ATT_BQ;
        att_load_tile<D, ATT_BQ>(Qs + st * ATT_BQ * (D + 8), qb0, qstride, q0, T);
        att_load_tile<D, ATT_BQ>(dOs + st * ATT_BQ * (D + 8), db0, qstride, q0, T);
        att_cp_commit();
        if (threadIdx.x < ATT_BQ) {
            const int i = q0 + threadIdx.x;
            Ls[st * ATT_BQ + threadIdx.x] = i < T ? lb[i] : -CUDART_INF_F;
            Dl[st * ATT_BQ + threadIdx.x] = i < T ? deb[i] : 0.f;
        }
    };
    att_load_tile<D, ATT_BN>(Ks, kb0, kstride, kb * ATT_BN, T);  // committed with the first Q/dO tile
    if (threadIdx.x < ATT_BN) Ms[threadIdx.x] = att_key_ok(kb * ATT_BN + threadIdx.x, T, km);
    issue(qt0);

    unsigned va[D / 16][4];  // V rows k0, k1 as A fragments
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        const int c = kk * 16 + t * 2;
        va[kk][0] = k0 < T ? att_ld32(vb0 + k0 * kstride + c) : 0u;
        va[kk][1] = k1 < T ? att_ld32(vb0 + k1 * kstride + c) : 0u;
        va[kk][2] = k0 < T ? att_ld32(vb0 + k0 * kstride + c + 8) : 0u;
        va[kk][3] = k1 < T ? att_ld32(vb0 + k1 * kstride + c + 8) : 0u;
    }
    float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) dk[j][e] = dv[j][e] = 0.f;

    for (int qt = qt0; qt < nqt; qt++) {
        const int q0 = qt * ATT_BQ, st = (qt - qt0) & 1;
        if (qt + 1 < nqt) {
            issue(qt + 1);  // its stage was last read before the second barrier of iteration qt-1
            att_cp_wait<1>();
        } else {
            att_cp_wait<0>();
        }
        __syncthreads();  // tile qt (and Ks, Ms on the first pass) visible to all
        const __nv_bfloat16* Qt = Qs + st * ATT_BQ * (D + 8);
        const __nv_bfloat16* dOt = dOs + st * ATT_BQ * (D + 8);
        const float* Lt = Ls + st * ATT_BQ;
        const float* Dt = Dl + st * ATT_BQ;
        float sT[ATT_BQ / 8][4], dpT[ATT_BQ / 8][4];  // S^T and dP^T: rows keys k0|k1, columns queries
#pragma unroll
        for (int j = 0; j < ATT_BQ / 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) sT[j][e] = dpT[j][e] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            unsigned ka[4];  // K rows of this warp as A fragments
            att_ldsm(ka, Ks + (warp * 16 + (mi & 1) * 8 + (lane & 7)) * (D + 8) + kk * 16 + (mi >> 1) * 8);
#pragma unroll
            for (int jp = 0; jp < ATT_BQ / 16; jp++) {
                const int off = ((2 * jp + (mi >> 1)) * 8 + (lane & 7)) * (D + 8) + kk * 16 + (mi & 1) * 8;
                unsigned bq[4], bo[4];
                att_ldsm(bq, Qt + off);
                att_mma(sT[2 * jp], ka, bq[0], bq[1]);
                att_mma(sT[2 * jp + 1], ka, bq[2], bq[3]);
                att_ldsm(bo, dOt + off);
                att_mma(dpT[2 * jp], va[kk], bo[0], bo[1]);
                att_mma(dpT[2 * jp + 1], va[kk], bo[2], bo[3]);
            }
        }
        const bool ok0 = Ms[kl0] != 0, ok1 = Ms[kl0 + 8] != 0;
        unsigned pa[ATT_BQ / 16][4], sa[ATT_BQ / 16][4];  // P^T and dS^T as A fragments (queries along k)
#pragma unroll
        for (int j = 0; j < ATT_BQ / 8; j++) {
            float p[4], ds[4];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int qi = j * 8 + t * 2 + (e & 1), qq = q0 + qi;
                const float L = Lt[qi];
                const bool vis = (e < 2 ? ok0 && k0 <= qq : ok1 && k1 <= qq) && qq < T && L != -CUDART_INF_F;
                p[e] = vis ? exp2f(sT[j][e] * scaleLog2 - L) : 0.f;
                ds[e] = p[e] * (dpT[j][e] - Dt[qi]);
                dSs[qi * (ATT_BN + 8) + kl0 + (e < 2 ? 0 : 8)] = __float2bfloat16(ds[e]);
            }
            pa[j / 2][(j & 1) * 2 + 0] = att_pack(p[0], p[1]);
            pa[j / 2][(j & 1) * 2 + 1] = att_pack(p[2], p[3]);
            sa[j / 2][(j & 1) * 2 + 0] = att_pack(ds[0], ds[1]);
            sa[j / 2][(j & 1) * 2 + 1] = att_pack(ds[2], ds[3]);
        }
        // dV += P^T dO and dK += dS^T Q; B operands (queries x d) by transposed ldmatrix.
#pragma unroll
        for (int kk = 0; kk < ATT_BQ / 16; kk++) {
#pragma unroll
            for (int dp = 0; dp < D / 16; dp++) {
                const int off = (kk * 16 + (mi & 1) * 8 + (lane & 7)) * (D + 8) + dp * 16 + (mi >> 1) * 8;
                unsigned bo[4], bq[4];
                att_ldsm_t(bo, dOt + off);
                att_mma(dv[2 * dp], pa[kk], bo[0], bo[1]);
                att_mma(dv[2 * dp + 1], pa[kk], bo[2], bo[3]);
                att_ldsm_t(bq, Qt + off);
                att_mma(dk[2 * dp], sa[kk], bq[0], bq[1]);
                att_mma(dk[2 * dp + 1], sa[kk], bq[2], bq[3]);
            }
        }
        __syncthreads();  // dSs complete; stage st fully read
        // dQ[32 q, D] += dS[32 q, 64 keys] K[64 keys, D]: warp w takes query rows (w&1)*16.. and every other
        // 16-wide column pair starting at (w>>1).
        const int rt = (warp & 1) * 16;
#pragma unroll
        for (int dp2 = 0; dp2 < (D / 16 + 1) / 2; dp2++) {
            const int dp = dp2 * 2 + (warp >> 1);
            if (dp >= D / 16) break;
            float aq[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
            for (int kk = 0; kk < ATT_BN / 16; kk++) {
                unsigned a[4], bk[4];
                att_ldsm(a, dSs + (rt + (mi & 1) * 8 + (lane & 7)) * (ATT_BN + 8) + kk * 16 + (mi >> 1) * 8);
                att_ldsm_t(bk, Ks + (kk * 16 + (mi & 1) * 8 + (lane & 7)) * (D + 8) + dp * 16 + (mi >> 1) * 8);
                att_mma(aq[0], a, bk[0], bk[1]);
                att_mma(aq[1], a, bk[2], bk[3]);
            }
            const int i0 = q0 + rt + g, i1 = i0 + 8;
#pragma unroll
            for (int n = 0; n < 2; n++) {
                const int c = dp * 16 + n * 8 + t * 2;
                float* d0 = dqacc + (((long long)b * T + i0) * H + h) * D + c;
                float* d1 = dqacc + (((long long)b * T + i1) * H + h) * D + c;
                if (i0 < T) {
                    atomicAdd(d0, aq[n][0] * scale);
                    atomicAdd(d0 + 1, aq[n][1] * scale);
                }
                if (i1 < T) {
                    atomicAdd(d1, aq[n][2] * scale);
                    atomicAdd(d1 + 1, aq[n][3] * scale);
                }
            }
        }
    }
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
        const int c = j * 8 + t * 2;
        if (k0 < T) {
            float* pk = dkacc + (((long long)b * T + k0) * KVH + kvh) * D + c;
            float* pv = dvacc + (((long long)b * T + k0) * KVH + kvh) * D + c;
            atomicAdd(pk, dk[j][0] * scale);
            atomicAdd(pk + 1, dk[j][1] * scale);
            atomicAdd(pv, dv[j][0]);
            atomicAdd(pv + 1, dv[j][1]);
        }
        if (k1 < T) {
            float* pk = dkacc + (((long long)b * T + k1) * KVH + kvh) * D + c;
            float* pv = dvacc + (((long long)b * T + k1) * KVH + kvh) * D + c;
            atomicAdd(pk, dk[j][2] * scale);
            atomicAdd(pk + 1, dk[j][3] * scale);
            atomicAdd(pv, dv[j][2]);
            atomicAdd(pv + 1, dv[j][3]);
        }
    }
}

#define ATT_BWD(D)                                                                                                 \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS) attention_bwd_d##D(                                  \
        float* dqacc, float* dkacc, float* dvacc, const __nv_bfloat16* q, const __nv_bfloat16* k,                \
        const __nv_bfloat16* v, const __nv_bfloat16* dout, const float* lse, const float* delta, const int* kmask, \
        long long T, long long H, long long KVH, float scale) {                                                    \
        att_bwd<D>(dqacc, dkacc, dvacc, q, k, v, dout, lse, delta, kmask, (int)T, (int)H, (int)KVH, scale);      \
    }
ATT_BWD(16)
ATT_BWD(32)
ATT_BWD(64)
ATT_BWD(128)

// Backward, step 3: out[i] = bf16(in[i]) for the three accumulators. in [n] fp32 -> out [n] bf16;
// grid ceil(n/256), block 256.
extern "C" __global__ void __launch_bounds__(256) attention_f32_to_bf16(
    __nv_bfloat16* __restrict__ out, const float* __restrict__ in, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = __float2bfloat16(in[i]);
}
