// Masked cross-entropy over one chunk of fp32 logits, loss and logit gradient in one pass pair per row.
// The lm_head GEMM (logits = x * W_lm^T) runs before it and dx += dlogits * W_lm after it, chunk by chunk, so the
// fp32 logits and their gradient exist for one chunk of tokens at a time (see gpu/crossentropy.go).
//   loss[r]     = logsumexp(logits[r, :]) - logits[r, label[r]]           (0 when label[r] < 0, i.e. ignored)
//   dlogits[r]  = gradScale * (softmax(logits[r, :]) - onehot(label[r]))  (0 when ignored)
// gradScale is dLoss / (number of non-ignored labels in the whole batch): the mean over valid tokens, as HF's
// CrossEntropyLoss(ignore_index=-100, reduction="mean").
#include <cuda_bf16.h>
#include <math_constants.h>

#define CE_THREADS 512

__device__ __forceinline__ void ce_merge(float& m, float& s, float m2, float s2) {
    const float mx = fmaxf(m, m2);
    if (mx == -CUDART_INF_F) return;  // both empty
    s = s * expf(m - mx) + s2 * expf(m2 - mx);
    m = mx;
}

// crossentropy_fwd_bwd_f32: logits [R, V] fp32, labels [R] int32 -> loss [R] fp32, dlogits [R, V] bf16.
// grid (R), block CE_THREADS.
extern "C" __global__ void __launch_bounds__(CE_THREADS) crossentropy_fwd_bwd_f32(
    float* __restrict__ loss, __nv_bfloat16* __restrict__ dlogits, const float* __restrict__ logits,
    const int* __restrict__ labels, long long V, float gradScale) {
    __shared__ float redm[32], reds[32];
    const long long r = blockIdx.x;
    const float* lr = logits + r * V;
    __nv_bfloat16* dr = dlogits + r * V;
    const int label = labels[r];
    if (label < 0 || label >= V) {
        // Ignored (-100) rows contribute nothing. (Labels >= V are rejected by the launcher's host check.)
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
