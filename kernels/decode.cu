// Decoding kernels of the GPU generator (gpu/decode*.go): the per-sequence KV cache append, and attention of
// one query per sequence against its cache (causal GQA, fp32 softmax). CPU twins: the cache append is a copy
// (model.Generator appends k and v rows to KVCache); decode attention is the last query row of
// model.AttentionForward (what model.Generator.Step computes through attnProbs).
#include <cuda_bf16.h>
#include <math.h>
#include "attention.cuh"
#include "pdl.cuh"

// kv_append_bf16: writes row r of k and v at position pos[r] of sequence slots[r]'s cache.
// kc, vc [S, cap, KVD] bf16 (one layer's caches); k, v [rows, KVD] bf16; slots, pos [rows] int32;
// KVD a multiple of 8 (16-byte copies). A row with pos outside [0, cap) is skipped (the launcher checks).
// grid (rows), block 128.
extern "C" __global__ void __launch_bounds__(128) kv_append_bf16(
    uint4* __restrict__ kc, uint4* __restrict__ vc, const uint4* __restrict__ k, const uint4* __restrict__ v,
    const int* __restrict__ slots, const int* __restrict__ pos, long long cap, long long kvd) {
    PDL_ENTRY();
    const long long r = blockIdx.x;
    const long long c8 = kvd / 8;
    const long long p = pos[r];
    if (p < 0 || p >= cap) return;
    const long long dst = ((long long)slots[r] * cap + p) * c8;
    for (long long i = threadIdx.x; i < c8; i += blockDim.x) {
        kc[dst + i] = k[r * c8 + i];
        vc[dst + i] = v[r * c8 + i];
    }
}

__device__ __forceinline__ float dec_warp_sum(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffff, x, o);
    return x;
}

__device__ __forceinline__ float dec_warp_max(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, o));
    return x;
}

// dec_block_reduce: the sum (max = false) or max (max = true) of x over the block; red [32] fp32 scratch.
// Every thread gets the result.
__device__ float dec_block_reduce(float x, float* red, bool max) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    x = max ? dec_warp_max(x) : dec_warp_sum(x);
    __syncthreads();  // red may still be read by a previous reduction
    if (lane == 0) red[warp] = x;
    __syncthreads();
    float y = lane < nw ? red[lane] : (max ? -INFINITY : 0.f);
    y = max ? dec_warp_max(y) : dec_warp_sum(y);
    return y;
}

// dec_softmax_exp turns the block's scores sc [T] into exp(sc − max) in place and returns their sum (the
// caller divides), and the max in *mo when mo is not null; tid strides over the keys. Its first barrier
// publishes the scores, the reduction's barriers publish the exponentials.
__device__ float dec_softmax_exp(float* sc, long long T, float* red, float* mo = nullptr) {
    const int tid = threadIdx.x;
    __syncthreads();
    float m = -INFINITY;
    for (long long j = tid; j < T; j += blockDim.x) m = fmaxf(m, sc[j]);
    m = dec_block_reduce(m, red, true);
    if (mo != nullptr) *mo = m;
    float s = 0.f;
    for (long long j = tid; j < T; j += blockDim.x) {
        const float e = expf(sc[j] - m);
        sc[j] = e;
        s += e;
    }
    return dec_block_reduce(s, red, false);
}

// decode_attention_bf16: for each row r (one sequence's newest token at position pos[r]) and query head h,
// o[r, h] = softmax(scale · q[r, h] · K[0..pos[r]]ᵀ) · V[0..pos[r]] over the keys of sequence slots[r]'s
// cache, KV head h / (H / KVH). fp32 scores and softmax (as model.AttentionForward), bf16 output.
// o, q [rows, H·D] bf16; kc, vc [S, cap, KVH·D] bf16; slots, pos [rows] int32. D ≤ 128 and a divisor of 128.
// grid (H, rows), block 128; dynamic shared memory (cap + 160) floats: scores [cap], partial outputs [128],
// reduction scratch [32].
extern "C" __global__ void __launch_bounds__(128) decode_attention_bf16(
    __nv_bfloat16* __restrict__ o, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ kc,
    const __nv_bfloat16* __restrict__ vc, const int* __restrict__ slots, const int* __restrict__ pos,
    long long H, long long KVH, long long D, long long cap, float scale) {
    PDL_ENTRY();
    extern __shared__ float dec_smem[];
    float* sc = dec_smem;              // [cap] scores, then probabilities
    float* part = dec_smem + cap;      // [128] partial outputs
    float* red = dec_smem + cap + 128; // [32]
    const long long h = blockIdx.x, r = blockIdx.y;
    const long long g = h / (H / KVH);
    const long long kvd = KVH * D;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nw = blockDim.x >> 5;
    const long long T = min((long long)pos[r] + 1, cap);  // keys 0..pos[r]
    __nv_bfloat16* orow = o + r * H * D + h * D;
    if (T <= 0) {
        for (long long d = tid; d < D; d += blockDim.x) orow[d] = __float2bfloat16(0.f);
        return;
    }
    const __nv_bfloat16* kb = kc + (long long)slots[r] * cap * kvd + g * D;
    const __nv_bfloat16* vb = vc + (long long)slots[r] * cap * kvd + g * D;
    const __nv_bfloat16* qr = q + r * H * D + h * D;
    float qv[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const long long d = lane + 32 * i;
        qv[i] = d < D ? __bfloat162float(qr[d]) : 0.f;
    }
    // Scores: one warp per key.
    for (long long j = warp; j < T; j += nw) {
        const __nv_bfloat16* kj = kb + j * kvd;
        float dot = 0.f;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const long long d = lane + 32 * i;
            if (d < D) dot += qv[i] * __bfloat162float(kj[d]);
        }
        dot = dec_warp_sum(dot);
        if (lane == 0) sc[j] = dot * scale;
    }
    const float s = dec_softmax_exp(sc, T, red);
    const float inv = 1.f / s;
    // Output: groups of D threads, group gi sums keys gi, gi + G, ...; then the groups are added.
    const int G = blockDim.x / (int)D;
    const int gi = tid / (int)D, d = tid % (int)D;
    float acc = 0.f;
    if (gi < G)
        for (long long j = gi; j < T; j += G) acc += sc[j] * __bfloat162float(vb[j * kvd + d]);
    part[tid] = acc;
    __syncthreads();
    if (tid < D) {
        float t = 0.f;
        for (int k = 0; k < G; k++) t += part[k * D + tid];
        orow[tid] = __float2bfloat16(t * inv);
    }
}

// dec_bf16x4: 4 consecutive bf16 values (8 bytes) as floats.
__device__ __forceinline__ void dec_bf16x4(const __nv_bfloat16* p, float* f) {
    const uint2 u = *reinterpret_cast<const uint2*>(p);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
    const float2 a = __bfloat1622float2(h[0]), b = __bfloat1622float2(h[1]);
    f[0] = a.x;
    f[1] = a.y;
    f[2] = b.x;
    f[3] = b.y;
}

// decode_attention_d128_bf16: decode_attention_bf16 for D = 128 with more work in flight: 8 warps, each lane
// owning 4 consecutive dimensions (8-byte loads), 4 keys per warp iteration for the scores and for P·V, the
// warps' partial outputs added at the end. Same arguments and result (fp32 scores and softmax, bf16 output).
// grid (H, rows), block 256; dynamic shared memory (cap + 8·128 + 32) floats.
extern "C" __global__ void __launch_bounds__(256) decode_attention_d128_bf16(
    __nv_bfloat16* __restrict__ o, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ kc,
    const __nv_bfloat16* __restrict__ vc, const int* __restrict__ slots, const int* __restrict__ pos,
    long long H, long long KVH, long long D, long long cap, float scale) {
    PDL_ENTRY();
    extern __shared__ float dec_smem[];
    float* sc = dec_smem;                  // [cap]
    float* part = dec_smem + cap;          // [8][128]
    float* red = dec_smem + cap + 8 * 128; // [32]
    const long long h = blockIdx.x, r = blockIdx.y;
    const long long g = h / (H / KVH);
    const long long kvd = KVH * 128;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int NW = 8, U = 4;
    const long long T = min((long long)pos[r] + 1, cap);
    __nv_bfloat16* orow = o + r * H * 128 + h * 128;
    if (T <= 0) {
        if (tid < 128) orow[tid] = __float2bfloat16(0.f);
        return;
    }
    const __nv_bfloat16* kb = kc + (long long)slots[r] * cap * kvd + g * 128 + lane * 4;
    const __nv_bfloat16* vb = vc + (long long)slots[r] * cap * kvd + g * 128 + lane * 4;
    float qv[4];
    dec_bf16x4(q + r * H * 128 + h * 128 + lane * 4, qv);
    for (long long j0 = (long long)warp * U; j0 < T; j0 += NW * U) {
        float kv[U][4], dot[U];
#pragma unroll
        for (int u = 0; u < U; u++)
            if (j0 + u < T) dec_bf16x4(kb + (j0 + u) * kvd, kv[u]);
#pragma unroll
        for (int u = 0; u < U; u++) {
            dot[u] = 0.f;
            if (j0 + u < T) dot[u] = qv[0] * kv[u][0] + qv[1] * kv[u][1] + qv[2] * kv[u][2] + qv[3] * kv[u][3];
        }
#pragma unroll
        for (int u = 0; u < U; u++) dot[u] = dec_warp_sum(dot[u]);
        if (lane == 0)
#pragma unroll
            for (int u = 0; u < U; u++)
                if (j0 + u < T) sc[j0 + u] = dot[u] * scale;
    }
    const float s = dec_softmax_exp(sc, T, red);
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    for (long long j0 = (long long)warp * U; j0 < T; j0 += NW * U) {
        float vv[U][4];
#pragma unroll
        for (int u = 0; u < U; u++)
            if (j0 + u < T) dec_bf16x4(vb + (j0 + u) * kvd, vv[u]);
#pragma unroll
        for (int u = 0; u < U; u++)
            if (j0 + u < T) {
                const float p = sc[j0 + u];
#pragma unroll
                for (int i = 0; i < 4; i++) acc[i] += p * vv[u][i];
            }
    }
#pragma unroll
    for (int i = 0; i < 4; i++) part[warp * 128 + lane * 4 + i] = acc[i];
    __syncthreads();
    if (tid < 128) {
        float t = 0.f;
#pragma unroll
        for (int w = 0; w < NW; w++) t += part[w * 128 + tid];
        orow[tid] = __float2bfloat16(t / s);
    }
}

// decode_attention_split_d128_bf16: decode_attention_d128_bf16 over one slice of each row's keys, for when
// rows · H blocks are too few to fill the GPU (flash decoding): block (h, r, s) of S = gridDim.z takes keys
// [s·n, min((s+1)·n, T)), n = ceil(T / S), T = pos[r] + 1, and writes part[r, h, s] [130] fp32: its
// unnormalized output Σ_j exp(sc_j − m)·v_j [128], then m (its max score; −inf for an empty slice) and
// l = Σ_j exp(sc_j − m). decode_attention_merge_bf16 combines the slices. Arguments otherwise as
// decode_attention_d128_bf16's; part [rows, H, S, 130] fp32.
// grid (H, rows, S), block 256; dynamic shared memory (ceil(cap / S) + 8·128 + 32) floats.
extern "C" __global__ void __launch_bounds__(256) decode_attention_split_d128_bf16(
    float* __restrict__ part, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ kc,
    const __nv_bfloat16* __restrict__ vc, const int* __restrict__ slots, const int* __restrict__ pos,
    long long H, long long KVH, long long cap, float scale) {
    PDL_ENTRY();
    extern __shared__ float dec_smem[];
    const long long S = gridDim.z;
    float* sc = dec_smem;                  // [ceil(cap / S)]
    float* pt = dec_smem + (cap + S - 1) / S;  // [8][128]
    float* red = pt + 8 * 128;             // [32]
    const long long h = blockIdx.x, r = blockIdx.y, s = blockIdx.z;
    const long long g = h / (H / KVH);
    const long long kvd = KVH * 128;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int NW = 8, U = 4;
    const long long T = min((long long)pos[r] + 1, cap);
    const long long n = T > 0 ? (T + S - 1) / S : 0;
    const long long j0 = s * n, nk = max(min(j0 + n, T) - j0, 0LL);  // keys j0 .. j0 + nk − 1
    float* dst = part + ((r * H + h) * S + s) * 130;
    if (nk == 0) {
        if (tid < 128) dst[tid] = 0.f;
        if (tid == 0) {
            dst[128] = -INFINITY;
            dst[129] = 0.f;
        }
        return;
    }
    const __nv_bfloat16* kb = kc + ((long long)slots[r] * cap + j0) * kvd + g * 128 + lane * 4;
    const __nv_bfloat16* vb = vc + ((long long)slots[r] * cap + j0) * kvd + g * 128 + lane * 4;
    float qv[4];
    dec_bf16x4(q + r * H * 128 + h * 128 + lane * 4, qv);
    for (long long i0 = (long long)warp * U; i0 < nk; i0 += NW * U) {
        float kv[U][4], dot[U];
#pragma unroll
        for (int u = 0; u < U; u++)
            if (i0 + u < nk) dec_bf16x4(kb + (i0 + u) * kvd, kv[u]);
#pragma unroll
        for (int u = 0; u < U; u++) {
            dot[u] = 0.f;
            if (i0 + u < nk) dot[u] = qv[0] * kv[u][0] + qv[1] * kv[u][1] + qv[2] * kv[u][2] + qv[3] * kv[u][3];
        }
#pragma unroll
        for (int u = 0; u < U; u++) dot[u] = dec_warp_sum(dot[u]);
        if (lane == 0)
#pragma unroll
            for (int u = 0; u < U; u++)
                if (i0 + u < nk) sc[i0 + u] = dot[u] * scale;
    }
    float m;
    const float l = dec_softmax_exp(sc, nk, red, &m);
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    for (long long i0 = (long long)warp * U; i0 < nk; i0 += NW * U) {
        float vv[U][4];
#pragma unroll
        for (int u = 0; u < U; u++)
            if (i0 + u < nk) dec_bf16x4(vb + (i0 + u) * kvd, vv[u]);
#pragma unroll
        for (int u = 0; u < U; u++)
            if (i0 + u < nk) {
                const float p = sc[i0 + u];
#pragma unroll
                for (int i = 0; i < 4; i++) acc[i] += p * vv[u][i];
            }
    }
#pragma unroll
    for (int i = 0; i < 4; i++) pt[warp * 128 + lane * 4 + i] = acc[i];
    __syncthreads();
    if (tid < 128) {
        float t = 0.f;
#pragma unroll
        for (int w = 0; w < NW; w++) t += pt[w * 128 + tid];
        dst[tid] = t;
    }
    if (tid == 0) {
        dst[128] = m;
        dst[129] = l;
    }
}

// decode_attention_merge_bf16: o[r, h] = Σ_s e_s·O_s / Σ_s e_s·l_s with e_s = exp(m_s − max_s m_s), over the S
// slices (O_s, m_s, l_s) that decode_attention_split_d128_bf16 wrote to part [rows, H, S, 130] fp32 (slice 0 is
// never empty). o [rows, H·128] bf16. grid (H, rows), block 128.
extern "C" __global__ void __launch_bounds__(128) decode_attention_merge_bf16(
    __nv_bfloat16* __restrict__ o, const float* __restrict__ part, long long H, long long S) {
    PDL_ENTRY();
    const long long h = blockIdx.x, r = blockIdx.y;
    const int tid = threadIdx.x;
    const float* p = part + (r * H + h) * S * 130;
    float M = -INFINITY;
    for (long long s = 0; s < S; s++) M = fmaxf(M, p[s * 130 + 128]);
    float L = 0.f, acc = 0.f;
    if (M != -INFINITY)
        for (long long s = 0; s < S; s++) {
            const float e = expf(p[s * 130 + 128] - M);
            L += e * p[s * 130 + 129];
            acc += e * p[s * 130 + tid];
        }
    o[(r * H + h) * 128 + tid] = __float2bfloat16(L > 0.f ? acc / L : 0.f);
}

// ---- Decode attention by GQA group: decode_attention_gqa_d128_bf16 ----
//
// One block per (KV head g, row r, key slice s) computes all G = H / KVH query heads of the group, so each
// key and value row is read once for the group instead of once per query head (7 times for Qwen2-7B). The
// block walks its keys in chunks of GQA_C with an online softmax (running max and sum per head), so shared
// memory does not grow with the cache. Each warp takes GQA_U consecutive keys of a chunk, loading their K and V
// rows (lane: 4 dims, 8 bytes) together; a key's G dot products are reduced over the warp in one pass
// (gqa_reduce8); warp h < G updates head h's max and sum; every warp rescales and adds its keys' p·v; the
// warps' partial outputs are added in warp order at the end.

#define GQA_MAXG 8
#define GQA_NW 8
#define GQA_U 8
#define GQA_C (GQA_NW * GQA_U)

// gqa_reduce8 sums v[h] (h < 8) over the warp; lane L gets the sum for h = (L >> 2) & 7. Three exchange
// steps halve the values each lane holds (4, 2, 1), two more finish the sum: 9 shuffles for 8 sums.
__device__ __forceinline__ float gqa_reduce8(const float* v, int lane) {
    const unsigned full = 0xffffffffu;
    float w4[4], w2[2];
    const bool b16 = lane & 16, b8 = lane & 8, b4 = lane & 4;
#pragma unroll
    for (int i = 0; i < 4; i++) {  // keep heads 0..3 (lanes 0..15) or 4..7 (lanes 16..31)
        const float send = b16 ? v[i] : v[i + 4], keep = b16 ? v[i + 4] : v[i];
        w4[i] = keep + __shfl_xor_sync(full, send, 16);
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const float send = b8 ? w4[i] : w4[i + 2], keep = b8 ? w4[i + 2] : w4[i];
        w2[i] = keep + __shfl_xor_sync(full, send, 8);
    }
    const float send = b4 ? w2[0] : w2[1], keep = b4 ? w2[1] : w2[0];
    float w1 = keep + __shfl_xor_sync(full, send, 4);
    w1 += __shfl_xor_sync(full, w1, 2);
    return w1 + __shfl_xor_sync(full, w1, 1);
}

// gqa_empty_slice writes what block (g, r, s) of a GQA decode attention kernel outputs for a slice without
// keys: zeros for its G heads' outputs (one slice), or their records with max −inf and sum 0.
__device__ __forceinline__ void gqa_empty_slice(__nv_bfloat16* __restrict__ o, float* __restrict__ part, int G,
                                                long long g, long long r, long long s, long long S, long long H) {
    for (int e = threadIdx.x; e < G * 128; e += blockDim.x) {
        const long long h = g * G + e / 128;
        if (S == 1)
            o[(r * H + h) * 128 + e % 128] = __float2bfloat16(0.f);
        else {
            float* dst = part + ((r * H + h) * S + s) * 130;
            dst[e % 128] = 0.f;
            if (e % 128 == 0) {
                dst[128] = -INFINITY;
                dst[129] = 0.f;
            }
        }
    }
}

// decode_attention_gqa_d128_bf16: decode attention (as decode_attention_bf16: fp32 scores and softmax) for
// D = 128 and G = H / KVH ≤ 8, block (g, r, s) over key slice s of S = gridDim.z (keys [s·n, min((s+1)·n, T)),
// n = ceil(T / S), T = pos[r] + 1). With S = 1 it writes o [rows, H·128] bf16; with S > 1 it writes each
// head's record part[r, h, s] [130] fp32 (unnormalized output, max score, sum; −inf and 0 for an empty
// slice) for decode_attention_merge_bf16. q [rows, H·128] bf16; kc, vc [Slots, cap, KVH·128] bf16; slots,
// pos [rows] int32. grid (KVH, rows, S), block 256.
extern "C" __global__ void __launch_bounds__(256, 2) decode_attention_gqa_d128_bf16(
    __nv_bfloat16* __restrict__ o, float* __restrict__ part, const __nv_bfloat16* __restrict__ q,
    const __nv_bfloat16* __restrict__ kc, const __nv_bfloat16* __restrict__ vc, const int* __restrict__ slots,
    const int* __restrict__ pos, long long H, long long KVH, long long cap, float scale) {
    PDL_ENTRY();
    __shared__ float sc[GQA_MAXG][GQA_C];          // a chunk's scores, then their exponentials
    __shared__ float corr[GQA_MAXG], ml[2][GQA_MAXG];  // per head: rescale of this chunk; final max, sum
    __shared__ float red[GQA_NW][GQA_MAXG][128];   // the warps' partial outputs
    const int G = (int)(H / KVH);
    const long long g = blockIdx.x, r = blockIdx.y, s = blockIdx.z, S = gridDim.z;
    const long long kvd = KVH * 128;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const long long T = min((long long)pos[r] + 1, cap);
    const long long n = T > 0 ? (T + S - 1) / S : 0;
    const long long j0 = s * n, nk = max(min(j0 + n, T) - j0, 0LL);  // keys j0 .. j0 + nk − 1
    if (nk == 0) {  // an empty slice (or no keys at all)
        gqa_empty_slice(o, part, G, g, r, s, S, H);
        return;
    }
    float qv[GQA_MAXG][4], acc[GQA_MAXG][4];
#pragma unroll
    for (int h = 0; h < GQA_MAXG; h++) {
#pragma unroll
        for (int i = 0; i < 4; i++) qv[h][i] = acc[h][i] = 0.f;
        if (h < G) dec_bf16x4(q + r * H * 128 + (g * G + h) * 128 + lane * 4, qv[h]);
    }
    float m = -INFINITY, l = 0.f;  // head `warp`'s running max and sum (warps < G)
    const __nv_bfloat16* kb = kc + ((long long)slots[r] * cap + j0) * kvd + g * 128 + lane * 4;
    const __nv_bfloat16* vb = vc + ((long long)slots[r] * cap + j0) * kvd + g * 128 + lane * 4;
    for (long long c0 = 0; c0 < nk; c0 += GQA_C) {
        const long long k0 = c0 + warp * GQA_U;  // this warp's keys k0 .. k0 + GQA_U − 1 of the slice
        const int nc = (int)min((long long)GQA_C, nk - c0);  // keys in this chunk
        uint2 kraw[GQA_U], vraw[GQA_U];  // kept packed until used: registers bound the blocks per SM
#pragma unroll
        for (int u = 0; u < GQA_U; u++)
            if (k0 + u < nk) {
                kraw[u] = *reinterpret_cast<const uint2*>(kb + (k0 + u) * kvd);
                vraw[u] = *reinterpret_cast<const uint2*>(vb + (k0 + u) * kvd);
            }
#pragma unroll
        for (int u = 0; u < GQA_U; u++) {
            if (k0 + u >= nk) break;  // the same for the whole warp
            float kv[4], dot[GQA_MAXG];
            dec_bf16x4(reinterpret_cast<const __nv_bfloat16*>(&kraw[u]), kv);
#pragma unroll
            for (int h = 0; h < GQA_MAXG; h++)
                dot[h] = qv[h][0] * kv[0] + qv[h][1] * kv[1] + qv[h][2] * kv[2] + qv[h][3] * kv[3];
            const float d = gqa_reduce8(dot, lane);
            const int h = (lane >> 2) & 7;
            if ((lane & 3) == 0 && h < G) sc[h][warp * GQA_U + u] = d * scale;
        }
        __syncthreads();  // the chunk's scores
        if (warp < G) {   // warp h: head h's online softmax over the chunk
            const float s0 = lane < nc ? sc[warp][lane] : -INFINITY;
            const float s1 = lane + 32 < nc ? sc[warp][lane + 32] : -INFINITY;
            const float mn = fmaxf(m, dec_warp_max(fmaxf(s0, s1)));
            const float e0 = lane < nc ? expf(s0 - mn) : 0.f, e1 = lane + 32 < nc ? expf(s1 - mn) : 0.f;
            if (lane < nc) sc[warp][lane] = e0;
            if (lane + 32 < nc) sc[warp][lane + 32] = e1;
            const float c = expf(m - mn);  // 0 on the first chunk (m = −inf)
            l = l * c + dec_warp_sum(e0 + e1);
            m = mn;
            if (lane == 0) corr[warp] = c;
        }
        __syncthreads();  // the exponentials and the rescales
#pragma unroll
        for (int h = 0; h < GQA_MAXG; h++) {
            if (h >= G) break;
            const float c = corr[h];
#pragma unroll
            for (int i = 0; i < 4; i++) acc[h][i] *= c;
        }
#pragma unroll
        for (int u = 0; u < GQA_U; u++) {
            if (k0 + u >= nk) break;
            float vv[4];
            dec_bf16x4(reinterpret_cast<const __nv_bfloat16*>(&vraw[u]), vv);
#pragma unroll
            for (int h = 0; h < GQA_MAXG; h++) {
                if (h >= G) break;
                const float p = sc[h][warp * GQA_U + u];
#pragma unroll
                for (int i = 0; i < 4; i++) acc[h][i] += p * vv[i];
            }
        }
        __syncthreads();  // sc and corr are rewritten by the next chunk
    }
    if (warp < G && lane == 0) {
        ml[0][warp] = m;
        ml[1][warp] = l;
    }
#pragma unroll
    for (int h = 0; h < GQA_MAXG; h++)
        if (h < G)
#pragma unroll
            for (int i = 0; i < 4; i++) red[warp][h][lane * 4 + i] = acc[h][i];
    __syncthreads();
    for (int e = tid; e < G * 128; e += blockDim.x) {
        const int hh = e / 128, dd = e % 128;
        float t = 0.f;
#pragma unroll
        for (int w = 0; w < GQA_NW; w++) t += red[w][hh][dd];
        const long long h = g * G + hh;
        if (S == 1)
            o[(r * H + h) * 128 + dd] = __float2bfloat16(t / ml[1][hh]);
        else {
            float* dst = part + ((r * H + h) * S + s) * 130;
            dst[dd] = t;
            if (dd == 0) {
                dst[128] = ml[0][hh];
                dst[129] = ml[1][hh];
            }
        }
    }
}

// ---- Decode attention by GQA group on tensor cores: decode_attention_mma_d128_bf16 ----
//
// What decode_attention_gqa_d128_bf16 computes (same grid of (KV head g, row r, key slice s), same outputs),
// with the group's G query heads as rows 0..G−1 of an mma.sync m16n8k16 tile (rows G..15 zero). The block's
// 4 warps take interleaved chunks of DMMA_KB keys of the slice (warp w: chunks w, w + 4, ...), each with its
// own online softmax and a 2-stage cp.async pipeline of its chunks' K and V rows [DMMA_KB, 128] in shared
// memory (rows DMMA_LD bf16 apart: ldmatrix conflict-free). Per chunk: scores S = Q·Kᵀ (fp32 sums of the bf16
// products; K by ldmatrix), masked past the slice, scaled; the running max and sum in fp32; P rounded to bf16
// as the A operand of O += P·V (V by transposed ldmatrix), as the prefill's flash attention (attention.cu)
// does. At the end the warps' (max, sum, O) merge through shared memory. Lane (gr, t) of a warp holds query
// row gr's scores of keys 2t, 2t + 1, 8 + 2t, 9 + 2t of a chunk and its outputs 8j + 2t, 8j + 2t + 1
// (j = 0..15). grid (KVH, rows, S), block 128, dynamic shared memory DMMA_SMEM.
#define DMMA_KB 16
#define DMMA_LD 136
#define DMMA_TILE (DMMA_KB * DMMA_LD)        // bf16 of a staged K or V chunk
#define DMMA_SMEM (4 * 2 * 2 * DMMA_TILE * 2)  // bytes: 4 warps × 2 stages × (K, V)

extern "C" __global__ void __launch_bounds__(128, 3) decode_attention_mma_d128_bf16(
    __nv_bfloat16* __restrict__ o, float* __restrict__ part, const __nv_bfloat16* __restrict__ q,
    const __nv_bfloat16* __restrict__ kc, const __nv_bfloat16* __restrict__ vc, const int* __restrict__ slots,
    const int* __restrict__ pos, long long H, long long KVH, long long cap, float scale) {
    PDL_ENTRY();
    extern __shared__ __align__(16) unsigned char dmma_smem[];
    __shared__ float wml[4][2][8];  // per warp and head: max, sum
    const int G = (int)(H / KVH);
    const long long g = blockIdx.x, r = blockIdx.y, s = blockIdx.z, S = gridDim.z;
    const long long kvd = KVH * 128;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, gr = lane >> 2, t = lane & 3;
    const long long T = min((long long)pos[r] + 1, cap);
    const long long n = T > 0 ? (T + S - 1) / S : 0;
    const long long j0 = s * n;
    const int nk = (int)max(min(j0 + n, T) - j0, 0LL);  // keys j0 .. j0 + nk − 1
    if (nk == 0) {  // an empty slice (or no keys at all)
        gqa_empty_slice(o, part, G, g, r, s, S, H);
        return;
    }
    // Q's A fragments, k-step ks: row gr's inputs 16ks + 2t, + 1 and 16ks + 2t + 8, + 9 (rows ≥ G and gr + 8: 0).
    unsigned qa[8][2];
    const __nv_bfloat16* qr = q + (r * H + g * G + gr) * 128;
#pragma unroll
    for (int ks = 0; ks < 8; ks++) {
        qa[ks][0] = gr < G ? att_ld32(qr + 16 * ks + 2 * t) : 0u;
        qa[ks][1] = gr < G ? att_ld32(qr + 16 * ks + 2 * t + 8) : 0u;
    }
    __nv_bfloat16* ws = reinterpret_cast<__nv_bfloat16*>(dmma_smem) + warp * 4 * DMMA_TILE;  // [stage][K, V]
    const __nv_bfloat16* kb = kc + ((long long)slots[r] * cap + j0) * kvd + g * 128;
    const __nv_bfloat16* vb = vc + ((long long)slots[r] * cap + j0) * kvd + g * 128;
    // load stages chunk c's K and V rows (zeros past the slice) into stage st.
    auto load = [&](int c, int st) {
#pragma unroll
        for (int i = lane; i < DMMA_KB * 16; i += 32) {
            const int key = c * DMMA_KB + i / 16, col = (i % 16) * 8;
            const bool ok = key < nk;
            const long long at = ok ? (long long)key * kvd + col : 0;
            att_cp16(ws + (2 * st) * DMMA_TILE + (i / 16) * DMMA_LD + col, kb + at, ok);
            att_cp16(ws + (2 * st + 1) * DMMA_TILE + (i / 16) * DMMA_LD + col, vb + at, ok);
        }
    };
    float m = -INFINITY, l = 0.f;  // row gr's running max and this lane's part of its sum
    float acc[16][4];
#pragma unroll
    for (int j = 0; j < 16; j++)
#pragma unroll
        for (int i = 0; i < 4; i++) acc[j][i] = 0.f;
    int st = 0;
    if (warp * DMMA_KB < nk) load(warp, 0);
    att_cp_commit();
    for (int c = warp; c * DMMA_KB < nk; c += 4, st ^= 1) {
        if ((c + 4) * DMMA_KB < nk) load(c + 4, st ^ 1);
        att_cp_commit();
        att_cp_wait<1>();
        __syncwarp();
        const __nv_bfloat16* Ks = ws + (2 * st) * DMMA_TILE;
        const __nv_bfloat16* Vs = Ks + DMMA_TILE;
        float sc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};  // keys 0..7, 8..15
        const int mi = lane >> 3, mr = lane & 7;  // the ldmatrix row this lane addresses
#pragma unroll
        for (int ks = 0; ks < 8; ks++) {
            unsigned b[4];  // matrices: keys 8·(mi / 2) + 0..7 × inputs 16ks + 8·(mi % 2) + 0..7
            att_ldsm(b, Ks + (8 * (mi >> 1) + mr) * DMMA_LD + 16 * ks + 8 * (mi & 1));
            const unsigned a[4] = {qa[ks][0], 0u, qa[ks][1], 0u};
            att_mma(sc[0], a, b[0], b[1]);
            att_mma(sc[1], a, b[2], b[3]);
        }
        const int k0 = c * DMMA_KB;
        float x[4] = {k0 + 2 * t < nk ? sc[0][0] * scale : -INFINITY, k0 + 2 * t + 1 < nk ? sc[0][1] * scale : -INFINITY,
                      k0 + 8 + 2 * t < nk ? sc[1][0] * scale : -INFINITY,
                      k0 + 9 + 2 * t < nk ? sc[1][1] * scale : -INFINITY};
        float mx = fmaxf(fmaxf(x[0], x[1]), fmaxf(x[2], x[3]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mn = fmaxf(m, mx);  // finite: the chunk has a key
        const float corr = expf(m - mn);  // 0 on the warp's first chunk (m = −inf)
        float p[4];
#pragma unroll
        for (int i = 0; i < 4; i++) p[i] = expf(x[i] - mn);
        l = l * corr + ((p[0] + p[1]) + (p[2] + p[3]));
        m = mn;
#pragma unroll
        for (int j = 0; j < 16; j++) {
            acc[j][0] *= corr;
            acc[j][1] *= corr;
        }
        const unsigned pa[4] = {att_pack(p[0], p[1]), 0u, att_pack(p[2], p[3]), 0u};
#pragma unroll
        for (int jj = 0; jj < 8; jj++) {
            unsigned b[4];  // transposed matrices: keys 8·(mi % 2) + 0..7 × outputs 16jj + 8·(mi / 2) + 0..7
            att_ldsm_t(b, Vs + (8 * (mi & 1) + mr) * DMMA_LD + 16 * jj + 8 * (mi >> 1));
            att_mma(acc[2 * jj], pa, b[0], b[1]);
            att_mma(acc[2 * jj + 1], pa, b[2], b[3]);
        }
        __syncwarp();  // the stage is refilled by the next chunk's copies
    }
    att_cp_wait<0>();
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    __syncthreads();  // every warp is done with its stages: they hold the warps' outputs [4][8][128] fp32 next
    float* wo = reinterpret_cast<float*>(dmma_smem);
    if (t == 0) {
        wml[warp][0][gr] = m;
        wml[warp][1][gr] = l;
    }
#pragma unroll
    for (int j = 0; j < 16; j++) {
        wo[(warp * 8 + gr) * 128 + 8 * j + 2 * t] = acc[j][0];
        wo[(warp * 8 + gr) * 128 + 8 * j + 2 * t + 1] = acc[j][1];
    }
    __syncthreads();
    for (int e = tid; e < G * 128; e += blockDim.x) {
        const int hh = e / 128, dd = e % 128;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < 4; w++) M = fmaxf(M, wml[w][0][hh]);
        float L = 0.f, O = 0.f;
#pragma unroll
        for (int w = 0; w < 4; w++) {
            const float f = expf(wml[w][0][hh] - M);  // 0 for a warp without keys
            L += f * wml[w][1][hh];
            O += f * wo[(w * 8 + hh) * 128 + dd];
        }
        const long long h = g * G + hh;
        if (S == 1)
            o[(r * H + h) * 128 + dd] = __float2bfloat16(O / L);
        else {
            float* dst = part + ((r * H + h) * S + s) * 130;
            dst[dd] = O;
            if (dd == 0) {
                dst[128] = M;
                dst[129] = L;
            }
        }
    }
}
