// Masked cross-entropy over one chunk of fp32 logits: loss and logit gradient, two passes over each row.
// The lm_head GEMM (logits = h * W_lm^T) runs before it and dh = dlogits * W_lm after it, chunk by chunk, so the
// fp32 logits and their gradient exist for one chunk of rows at a time (see gpu/ops/crossentropy.go).
// CPU twins: model.LMHeadCrossEntropyForward and model.LMHeadCrossEntropyBackward. Row n (= b*T + t) predicts
// target_n = labels[n+1], none for t = T-1 (HF's shift inside the loss); rows whose target is ignoreIndex
// (-100) contribute nothing:
//   loss[r]     = logsumexp(logits[r, :]) - logits[r, target]
//   dlogits[r]  = gradScale * (softmax(logits[r, :]) - onehot(target))
// gradScale is dloss / numItems (numItems = completion tokens of the whole effective batch).
#include <cuda_bf16.h>
#include <math_constants.h>

#define CE_THREADS 512

__device__ __forceinline__ void ce_merge(float& m, float& s, float m2, float s2) {
    const float mx = fmaxf(m, m2);
    if (mx == -CUDART_INF_F) return;  // both empty
    s = s * expf(m - mx) + s2 * expf(m2 - mx);
    m = mx;
}

// crossentropy_fwd_bwd_f32: one chunk of R rows starting at row r0 of the batch, or, when rowIdx is not null,
// at entry r0 of the compacted row list rowIdx (from ce_target_rows).
// logits [R, V] fp32, labels [B*T] int32 (unshifted, the whole batch), rowIdx [*] int32 or null -> loss [R] fp32
// (0 when ignored), dlogits [R, V] bf16 (0 rows when ignored). A target outside [0, V) that is not ignoreIndex is
// treated as ignored and stores 1 + its batch row in *bad (if bad is not null). grid (R), block CE_THREADS.
extern "C" __global__ void __launch_bounds__(CE_THREADS) crossentropy_fwd_bwd_f32(
    float* __restrict__ loss, __nv_bfloat16* __restrict__ dlogits, const float* __restrict__ logits,
    const int* __restrict__ labels, const int* __restrict__ rowIdx, int* bad, long long r0, long long T, long long V,
    long long ignoreIndex, float gradScale) {
    __shared__ float redm[32], reds[32];
    const long long r = blockIdx.x, n = rowIdx != nullptr ? (long long)rowIdx[r0 + r] : r0 + r;
    const float* lr = logits + r * V;
    __nv_bfloat16* dr = dlogits + r * V;
    const long long label = (n % T == T - 1) ? ignoreIndex : (long long)labels[n + 1];
    if (label == ignoreIndex || label < 0 || label >= V) {
        if (label != ignoreIndex && bad != nullptr && threadIdx.x == 0) atomicCAS(bad, 0, (int)n + 1);
        for (long long i = threadIdx.x; i < V; i += blockDim.x) dr[i] = __float2bfloat16(0.f);
        if (threadIdx.x == 0) loss[r] = 0.f;
        return;
    }
    float m = -CUDART_INF_F, s = 0.f;
    for (long long i = threadIdx.x; i < V; i += blockDim.x) {
        const float x = lr[i];
        if (x > m) {
            s = s * expf(m - x) + 1.f;
            m = x;
        } else {
            s += expf(x - m);
        }
    }
    for (int o = 16; o > 0; o >>= 1) ce_merge(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) {
        redm[warp] = m;
        reds[warp] = s;
    }
    __syncthreads();
    const int nw = blockDim.x >> 5;
    m = lane < nw ? redm[lane] : -CUDART_INF_F;
    s = lane < nw ? reds[lane] : 0.f;
    for (int o = 16; o > 0; o >>= 1) ce_merge(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
    const float lse = m + logf(s);
    if (threadIdx.x == 0) loss[r] = lse - lr[label];
    for (long long i = threadIdx.x; i < V; i += blockDim.x) {
        float p = expf(lr[i] - lse);
        if (i == label) p -= 1.f;
        dr[i] = __float2bfloat16(p * gradScale);
    }
}

// ce_loss_sum_f32: loss [R] fp32 -> out[0] = scale * sum(loss) (fixed-order, deterministic). grid 1, block CE_THREADS.
extern "C" __global__ void __launch_bounds__(CE_THREADS) ce_loss_sum_f32(
    float* __restrict__ out, const float* __restrict__ loss, long long R, float scale) {
    __shared__ double red[32];
    double s = 0.0;
    for (long long i = threadIdx.x; i < R; i += blockDim.x) s += (double)loss[i];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) red[warp] = s;
    __syncthreads();
    if (warp == 0) {
        s = lane < (int)(blockDim.x >> 5) ? red[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) out[0] = (float)(s * (double)scale);
    }
}

// ce_target_rows lists, in ascending order, the rows n of the batch whose target labels[n+1] (same sequence) is
// not ignoreIndex: idx [R] int32 receives them in its first entries. expect is the host's count of such rows
// (it sizes the GEMMs); a different count stores -1 in *bad (if not null). grid 1, block 1024.
extern "C" __global__ void __launch_bounds__(1024) ce_target_rows(
    int* __restrict__ idx, int* bad, const int* __restrict__ labels, long long R, long long T, long long ignoreIndex,
    long long expect) {
    __shared__ int warpSum[32];
    __shared__ int base;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (threadIdx.x == 0) base = 0;
    __syncthreads();
    for (long long r0 = 0; r0 < R; r0 += blockDim.x) {
        const long long n = r0 + threadIdx.x;
        const int f = (n < R && n % T != T - 1 && (long long)labels[n + 1] != ignoreIndex) ? 1 : 0;
        int x = f;  // inclusive scan within the warp
        for (int o = 1; o < 32; o <<= 1) {
            const int y = __shfl_up_sync(0xffffffffu, x, o);
            if (lane >= o) x += y;
        }
        if (lane == 31) warpSum[warp] = x;
        __syncthreads();
        if (warp == 0) {
            int w = lane < (int)(blockDim.x >> 5) ? warpSum[lane] : 0;
            for (int o = 1; o < 32; o <<= 1) {
                const int y = __shfl_up_sync(0xffffffffu, w, o);
                if (lane >= o) w += y;
            }
            warpSum[lane] = w;  // inclusive prefix over warps
        }
        __syncthreads();
        const int before = base + (warp > 0 ? warpSum[warp - 1] : 0) + x - f;
        if (f) idx[before] = (int)n;
        __syncthreads();
        if (threadIdx.x == 0) base += warpSum[(blockDim.x >> 5) - 1];
        __syncthreads();
    }
    if (threadIdx.x == 0 && base != expect && bad != nullptr) atomicExch(bad, -1);
}

// ce_scatter_rows: dh[idx[r], :] = dhc[r, :] for r < M (rows of H bf16, H % 8 == 0); the other rows of dh were
// zeroed before. dh [B*T, H], dhc [M, H] bf16, idx [M] int32. grid (M), block 128.
extern "C" __global__ void __launch_bounds__(128) ce_scatter_rows(
    uint4* __restrict__ dh, const uint4* __restrict__ dhc, const int* __restrict__ idx, long long H) {
    const long long r = blockIdx.x, h8 = H / 8;
    const long long n = idx[r];
    for (long long i = threadIdx.x; i < h8; i += blockDim.x) dh[n * h8 + i] = dhc[r * h8 + i];
}
