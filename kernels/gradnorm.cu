// Global gradient-norm clipping (torch.nn.utils.clip_grad_norm_ with norm_type 2) over one flat fp32 gradient
// buffer holding every trainable parameter's gradient:
//   norm = sqrt(sum g^2);  scale = min(1, maxNorm / (norm + 1e-6))   (scale = 1 when maxNorm <= 0)
// gradnorm_partial writes one partial sum of squares per block; gradnorm_finish (one block) adds them in a fixed
// order (deterministic) and writes out[0] = norm, out[1] = scale. The scale is applied by adamw_f32 (its gscale
// argument) or by grad_scale_f32.
#define GN_THREADS 256

__device__ __forceinline__ double gn_block_sum(double v, double* red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x >> 5) ? red[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// gradnorm_partial: g [n] fp32 -> partial [gridDim.x] fp32 (sums of squares). block GN_THREADS, any grid.
extern "C" __global__ void __launch_bounds__(GN_THREADS) gradnorm_partial(
    float* __restrict__ partial, const float* __restrict__ g, long long n) {
    __shared__ double red[32];
    float s = 0.f;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const float x = g[i];
        s += x * x;
    }
    const double t = gn_block_sum((double)s, red);
    if (threadIdx.x == 0) partial[blockIdx.x] = (float)t;
}

// gradnorm_finish: partial [np] fp32 -> out [2] fp32 = {norm, clip scale}. grid 1, block GN_THREADS.
extern "C" __global__ void __launch_bounds__(GN_THREADS) gradnorm_finish(
    float* __restrict__ out, const float* __restrict__ partial, long long np, float maxNorm) {
    __shared__ double red[32];
    double s = 0.0;
    for (long long i = threadIdx.x; i < np; i += blockDim.x) s += (double)partial[i];
    s = gn_block_sum(s, red);
    if (threadIdx.x == 0) {
        const float norm = (float)sqrt(s);
        float scale = 1.0f;
        if (maxNorm > 0.f) scale = fminf(1.0f, maxNorm / (norm + 1e-6f));
        out[0] = norm;
        out[1] = scale;
    }
}

// grad_scale_f32: g[i] *= *scale for i < n. grid ceil(n/256), block 256.
extern "C" __global__ void __launch_bounds__(256) grad_scale_f32(float* g, const float* __restrict__ scale, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) g[i] *= *scale;
}
