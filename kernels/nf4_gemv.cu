// nf4_gemv.cu: a matrix-vector product straight from NF4 double-quantized weights (bitsandbytes layout), for
// decoding a few rows at a time without a bf16 copy of the weight.
//
// Conventions: see kernels/doc.go (extern "C", 64-bit scalars or pointers, float parameters allowed).
#include <cuda_bf16.h>
#include <stdint.h>

#define NF4_GEMV_MAX_ROWS 8

__device__ __constant__ float kGemvLevels[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

// nf4_gemv computes y[r, o] = Σ_i x[r, i] · W[o, i] + beta · y[r, o] for r < rows ≤ 8, o < out, where W [out, in]
// is NF4 with double-quantized absmax exactly as nf4_dequant_bf16 reads it, and each W value is rounded to bf16
// before the product: the same operands as dequantizing to bf16 and running the GEMM, summed in fp32 in another
// order. One warp per output o; each lane takes 8 consecutive elements (4 code bytes, one 16-byte load of x per
// row) at a time. in must be a multiple of 8 and blocksize of 8, so 8 elements share one absmax; x rows are
// ldx elements apart (16-byte aligned), y rows ldy; codes 4-byte aligned. blockDim.x = 256 (8 outputs per block).
// y is fp32 when y_f32 != 0, else bf16. CPU twin: quant's (*Weight).Dequantize rounded to bf16, then x·Wᵀ.
extern "C" __global__ void nf4_gemv(void* __restrict__ y, const __nv_bfloat16* __restrict__ x,
                                    const uint8_t* __restrict__ codes, const uint8_t* __restrict__ absmax_q,
                                    const float* __restrict__ code2, const float* __restrict__ absmax2,
                                    float offset, float beta, long long rows64, long long out64, long long in64,
                                    long long ldx64, long long ldy64, long long blocksize64, long long blocksize2_64,
                                    long long y_f32) {
  __shared__ float map[256];
  __shared__ float levels[16];
  map[threadIdx.x] = code2[threadIdx.x];
  if (threadIdx.x < 16) levels[threadIdx.x] = kGemvLevels[threadIdx.x];
  __syncthreads();
  const int rows = (int)rows64, lane = threadIdx.x & 31;
  const long long o = (long long)blockIdx.x * 8 + (threadIdx.x >> 5);
  if (o >= out64) return;
  const long long in = in64, bs = blocksize64, bs2 = blocksize2_64;
  float acc[NF4_GEMV_MAX_ROWS];
#pragma unroll
  for (int r = 0; r < NF4_GEMV_MAX_ROWS; r++) acc[r] = 0.f;
  const long long row0 = o * in;  // element index of W[o, 0]
  for (long long i = (long long)lane * 8; i < in; i += 32 * 8) {
    const long long e = row0 + i;
    const uint32_t packed = __ldg(reinterpret_cast<const uint32_t*>(codes + e / 2));
    const long long blk = e / bs;
    // Rounded as bitsandbytes does it (absmax dequantized to fp32 first, then the offset added): no FMA.
    const float scale = __fadd_rn(__fmul_rn(map[__ldg(absmax_q + blk)], __ldg(absmax2 + blk / bs2)), offset);
    float w[8];
#pragma unroll
    for (int b = 0; b < 4; b++) {
      const uint32_t byte = (packed >> (8 * b)) & 0xff;
      w[2 * b] = __bfloat162float(__float2bfloat16_rn(levels[byte >> 4] * scale));
      w[2 * b + 1] = __bfloat162float(__float2bfloat16_rn(levels[byte & 0xf] * scale));
    }
#pragma unroll
    for (int r = 0; r < NF4_GEMV_MAX_ROWS; r++) {
      if (r < rows) {
        const uint4 xv = __ldg(reinterpret_cast<const uint4*>(x + r * ldx64 + i));
        const __nv_bfloat162* xp = reinterpret_cast<const __nv_bfloat162*>(&xv);
#pragma unroll
        for (int k = 0; k < 4; k++) {
          const float2 xf = __bfloat1622float2(xp[k]);
          acc[r] = fmaf(xf.x, w[2 * k], acc[r]);
          acc[r] = fmaf(xf.y, w[2 * k + 1], acc[r]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < NF4_GEMV_MAX_ROWS; r++) {
    float v = acc[r];
#pragma unroll
    for (int s = 16; s > 0; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);
    if (lane == 0 && r < rows) {
      const long long at = r * ldy64 + o;
      if (y_f32) {
        float* yf = reinterpret_cast<float*>(y);
        yf[at] = v + (beta != 0.f ? beta * yf[at] : 0.f);
      } else {
        __nv_bfloat16* yb = reinterpret_cast<__nv_bfloat16*>(y);
        yb[at] = __float2bfloat16_rn(v + (beta != 0.f ? beta * __bfloat162float(yb[at]) : 0.f));
      }
    }
  }
}
