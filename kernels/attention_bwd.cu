// Backward of the causal GQA flash attention of attention.cu (layouts there). Two ways, both tested:
//   attention_bwd_pre, attention_bwd_d<D> (dQ, dK, dV in one walk; dQ by fp32 atomics), attention_f32_to_bf16;
//   attention_bwd_pre, attention_bwd_kv_d<D> (dK, dV only) + attention_bwd_dq_d<D> (dQ, no atomics).
// gpu/ops/attention.go picks one.
#include "attention.cuh"

// Backward, step 1: delta[b,h,i] = sum_d dO[b,i,h,d] * O[b,i,h,d] (fp32), and zero the fp32 gradient
// accumulators (dq [B,T,H,D], skipped when dqacc is null; dk, dv [B,T,KVH,D]). One warp per (token, head); grid ceil(B*T*H / 4), block 128.
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
        if (dqacc != nullptr) dqacc[row * D + d] = 0.f;
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
    ((ATT_BN * ((D) + 8) + 2 * 2 * ATT_BQ * ((D) + 8) + ATT_BQ * (ATT_BN + 8)) * 2 + (3 * 2 * ATT_BQ + ATT_BN) * 4)
template <int D, bool DQ>
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
    int* Ms = reinterpret_cast<int*>(Dl + 2 * ATT_BQ);                  // [64] key segments (att_seg)
    int* Qm = Ms + ATT_BN;                                              // [2][32] query segments of the tile
    __shared__ int red[2];
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
    // Query tiles qt0 (causal) .. nqt - 1: the block's keys have segments in [klo, khi] (klo ignores padding),
    // and the tiles after the last query that is padding or in that range see none of them (a packed row's
    // later sequences; any kmask).
    const int qt0 = kb * ATT_BN / ATT_BQ;
    int nqt = (T + ATT_BQ - 1) / ATT_BQ;
    if (km != nullptr) {
        if (threadIdx.x == 0) red[0] = 0x7fffffff, red[1] = 0;
        __syncthreads();
        if (threadIdx.x < ATT_BN && kb * ATT_BN + (int)threadIdx.x < T) {
            const int s = km[kb * ATT_BN + threadIdx.x];
            if (s != 0) atomicMin(&red[0], s), atomicMax(&red[1], s);
        }
        __syncthreads();
        const int klo = red[0], khi = red[1];
        __syncthreads();
        if (threadIdx.x == 0) red[0] = -1;
        __syncthreads();
        if (khi != 0) {  // some key is not padding: the last query that may see it
            for (int i = T - 1 - threadIdx.x; i >= kb * ATT_BN; i -= blockDim.x) {
                if (km[i] == 0 || (km[i] >= klo && km[i] <= khi)) {
                    atomicMax(&red[0], i);
                    break;  // this thread's earlier positions are earlier
                }
            }
        }
        __syncthreads();
        nqt = red[0] < 0 ? 0 : red[0] / ATT_BQ + 1;  // 0 when no query sees a key of the block
        __syncthreads();
    }

    auto issue = [&](int qt) {
        const int st = (qt - qt0) & 1, q0 = qt * ATT_BQ;
        att_load_tile<D, ATT_BQ>(Qs + st * ATT_BQ * (D + 8), qb0, qstride, q0, T);
        att_load_tile<D, ATT_BQ>(dOs + st * ATT_BQ * (D + 8), db0, qstride, q0, T);
        att_cp_commit();
        if (threadIdx.x < ATT_BQ) {
            const int i = q0 + threadIdx.x;
            Ls[st * ATT_BQ + threadIdx.x] = i < T ? lb[i] : -CUDART_INF_F;
            Dl[st * ATT_BQ + threadIdx.x] = i < T ? deb[i] : 0.f;
            Qm[st * ATT_BQ + threadIdx.x] = att_seg(i, T, km);
        }
    };
    att_load_tile<D, ATT_BN>(Ks, kb0, kstride, kb * ATT_BN, T);  // committed with the first Q/dO tile
    if (threadIdx.x < ATT_BN) Ms[threadIdx.x] = att_seg(kb * ATT_BN + threadIdx.x, T, km);
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
        const int ks0 = Ms[kl0], ks1 = Ms[kl0 + 8];
        const int* Qt_m = Qm + st * ATT_BQ;
        unsigned pa[ATT_BQ / 16][4], sa[ATT_BQ / 16][4];  // P^T and dS^T as A fragments (queries along k)
#pragma unroll
        for (int j = 0; j < ATT_BQ / 8; j++) {
            float p[4], ds[4];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int qi = j * 8 + t * 2 + (e & 1), qq = q0 + qi;
                const float L = Lt[qi];
                const bool vis = (e < 2 ? att_vis(k0, ks0, qq, Qt_m[qi]) : att_vis(k1, ks1, qq, Qt_m[qi])) && qq < T &&
                                 L != -CUDART_INF_F;
                p[e] = vis ? exp2f(sT[j][e] * scaleLog2 - L) : 0.f;
                ds[e] = p[e] * (dpT[j][e] - Dt[qi]);
                if (DQ) dSs[qi * (ATT_BN + 8) + kl0 + (e < 2 ? 0 : 8)] = __float2bfloat16(ds[e]);
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
        if (!DQ) continue;  // dQ comes from attention_bwd_dq
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
    att_cp_wait<0>();  // nothing in flight when no query tile saw the block's keys
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
        att_bwd<D, true>(dqacc, dkacc, dvacc, q, k, v, dout, lse, delta, kmask, (int)T, (int)H, (int)KVH, scale); \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS) attention_bwd_kv_d##D(                               \
        float* dkacc, float* dvacc, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,      \
        const __nv_bfloat16* dout, const float* lse, const float* delta, const int* kmask, long long T,           \
        long long H, long long KVH, float scale) {                                                                 \
        att_bwd<D, false>(nullptr, dkacc, dvacc, q, k, v, dout, lse, delta, kmask, (int)T, (int)H, (int)KVH,      \
                          scale);                                                                                  \
    }
ATT_BWD(16)
ATT_BWD(32)
ATT_BWD(64)
ATT_BWD(128)

// Backward, dQ without atomics (used with attention_bwd_kv_d<D>): a block owns 64 queries of one head, as in
// the forward, and walks the key tiles they see: S = Q K^T, P = 2^(S - lse2), dP = dO V^T,
// dS = P * (dP - delta), dQ += scale * dS K, 16 keys at a time (no row maximum is needed here).
// dq [B, T, H, D] bf16, written once. grid (ceil(T/64), H, B), block 128, dynamic shared memory ATT_FWD_SMEM(D).
template <int D>
__device__ void att_bwd_dq(__nv_bfloat16* __restrict__ dq, const __nv_bfloat16* __restrict__ q,
                           const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v,
                           const __nv_bfloat16* __restrict__ dout, const float* __restrict__ lse,
                           const float* __restrict__ delta, const int* __restrict__ kmask, int T, int H, int KVH,
                           float scale) {
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
    const __nv_bfloat16* db0 = dout + (long long)b * T * qstride + (long long)h * D;
    const __nv_bfloat16* kb0 = k + (long long)b * T * kstride + (long long)kvh * D;
    const __nv_bfloat16* vb0 = v + (long long)b * T * kstride + (long long)kvh * D;
    const int* km = kmask == nullptr ? nullptr : kmask + (long long)b * T;
    const int r0 = qb * ATT_BM + warp * 16 + g, r1 = r0 + 8;  // this thread's two query rows
    const float scaleLog2 = scale * ATT_LOG2E;
    const float* lb = lse + ((long long)b * H + h) * T;
    const float* deb = delta + ((long long)b * H + h) * T;
    const float L0 = r0 < T ? lb[r0] : -CUDART_INF_F, L1 = r1 < T ? lb[r1] : -CUDART_INF_F;
    const float E0 = r0 < T ? deb[r0] : 0.f, E1 = r1 < T ? deb[r1] : 0.f;

    int qlo, qhi;  // as in the forward: key tiles kf..qb
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

    unsigned qa[D / 16][4], da[D / 16][4];  // Q and dO rows r0, r1 as A fragments
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        const int c = kk * 16 + t * 2;
        qa[kk][0] = r0 < T ? att_ld32(qb0 + r0 * qstride + c) : 0u;
        qa[kk][1] = r1 < T ? att_ld32(qb0 + r1 * qstride + c) : 0u;
        qa[kk][2] = r0 < T ? att_ld32(qb0 + r0 * qstride + c + 8) : 0u;
        qa[kk][3] = r1 < T ? att_ld32(qb0 + r1 * qstride + c + 8) : 0u;
        da[kk][0] = r0 < T ? att_ld32(db0 + r0 * qstride + c) : 0u;
        da[kk][1] = r1 < T ? att_ld32(db0 + r1 * qstride + c) : 0u;
        da[kk][2] = r0 < T ? att_ld32(db0 + r0 * qstride + c + 8) : 0u;
        da[kk][3] = r1 < T ? att_ld32(db0 + r1 * qstride + c + 8) : 0u;
    }
    float acc[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;

    for (int kb = kf; kb < nkb; kb++) {
        const int st = (kb - kf) & 1;
        if (kb + 1 < nkb) {
            issue(kb + 1);
            att_cp_wait<1>();
        } else {
            att_cp_wait<0>();
        }
        const bool full = __syncthreads_and(threadIdx.x >= ATT_BN || Ms[st * ATT_BN + threadIdx.x] == qlo) &&
                          qlo == qhi && qlo != 0 && kb < qb;
        const __nv_bfloat16* Kt = Ks + st * ATT_BN * (D + 8);
        const __nv_bfloat16* Vt = Vs + st * ATT_BN * (D + 8);
        const int* Mt = Ms + st * ATT_BN;
#pragma unroll
        for (int jp = 0; jp < ATT_BN / 16; jp++) {  // 16 keys at a time
            float sc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
            float dp[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                const int off = ((2 * jp + (mi >> 1)) * 8 + (lane & 7)) * (D + 8) + kk * 16 + (mi & 1) * 8;
                unsigned bk[4], bv[4];
                att_ldsm(bk, Kt + off);
                att_mma(sc[0], qa[kk], bk[0], bk[1]);
                att_mma(sc[1], qa[kk], bk[2], bk[3]);
                att_ldsm(bv, Vt + off);
                att_mma(dp[0], da[kk], bv[0], bv[1]);
                att_mma(dp[1], da[kk], bv[2], bv[3]);
            }
            unsigned sa[4];  // dS of these 16 keys as an A fragment
#pragma unroll
            for (int n = 0; n < 2; n++) {
                float ds[4];
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int cl = jp * 16 + n * 8 + t * 2 + (e & 1), c = kb * ATT_BN + cl;
                    const int r = e < 2 ? r0 : r1;
                    const float L = e < 2 ? L0 : L1;
                    const bool vis = (full || att_vis(c, Mt[cl], r, e < 2 ? mq0 : mq1)) && L != -CUDART_INF_F;
                    const float p = vis ? exp2f(sc[n][e] * scaleLog2 - L) : 0.f;
                    ds[e] = p * (dp[n][e] - (e < 2 ? E0 : E1));
                }
                sa[n * 2 + 0] = att_pack(ds[0], ds[1]);
                sa[n * 2 + 1] = att_pack(ds[2], ds[3]);
            }
            // dQ += dS K: K fragments (keys x d) by transposed ldmatrix.
#pragma unroll
            for (int dpi = 0; dpi < D / 16; dpi++) {
                unsigned bk[4];
                att_ldsm_t(bk, Kt + (jp * 16 + (mi & 1) * 8 + (lane & 7)) * (D + 8) + dpi * 16 + (mi >> 1) * 8);
                att_mma(acc[2 * dpi], sa, bk[0], bk[1]);
                att_mma(acc[2 * dpi + 1], sa, bk[2], bk[3]);
            }
        }
        __syncthreads();  // stage st fully read before iteration kb+1 refills it
    }
    __nv_bfloat16* dqb = dq + (long long)b * T * qstride + (long long)h * D;
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
        const int c = j * 8 + t * 2;
        if (r0 < T) *reinterpret_cast<unsigned*>(dqb + r0 * qstride + c) = att_pack(acc[j][0] * scale, acc[j][1] * scale);
        if (r1 < T) *reinterpret_cast<unsigned*>(dqb + r1 * qstride + c) = att_pack(acc[j][2] * scale, acc[j][3] * scale);
    }
}

#define ATT_BWD_DQ(D)                                                                                              \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS) attention_bwd_dq_d##D(                               \
        __nv_bfloat16* dq, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,               \
        const __nv_bfloat16* dout, const float* lse, const float* delta, const int* kmask, long long T,           \
        long long H, long long KVH, float scale) {                                                                 \
        att_bwd_dq<D>(dq, q, k, v, dout, lse, delta, kmask, (int)T, (int)H, (int)KVH, scale);                     \
    }
ATT_BWD_DQ(16)
ATT_BWD_DQ(32)
ATT_BWD_DQ(64)
ATT_BWD_DQ(128)

// Backward, step 3: out[i] = bf16(in[i]) for the three accumulators. in [n] fp32 -> out [n] bf16;
// grid ceil(n/256), block 256.
extern "C" __global__ void __launch_bounds__(256) attention_f32_to_bf16(
    __nv_bfloat16* __restrict__ out, const float* __restrict__ in, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = __float2bfloat16(in[i]);
}
