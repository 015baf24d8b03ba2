// nf4_mma.cuh: what the NF4 GEMV kernels (nf4_gemv.cu) and the NF4 GEMM (nf4_gemm.cu) share: the NF4 levels,
// the epilogue (bias, the LoRA term, beta and the store), the mma.sync m16n8k16 and the exact dequantization of
// 8 inputs (nf4_word4), and the kernels' common parameter list.
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>
#include "pdl.cuh"

__device__ __constant__ float kGemvLevels[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

// nf4_epilogue_extra is bias[o] + lora_scale · Σ_k h[r, k] · lora_b[o, k] (each part only when given), fp32.
__device__ __forceinline__ float nf4_epilogue_extra(const __nv_bfloat16* __restrict__ bias,
                                                    const __nv_bfloat16* __restrict__ lora_h,
                                                    const __nv_bfloat16* __restrict__ lora_b, float lora_scale,
                                                    long long r, long long o, long long ldh, long long rank) {
  float e = 0.f;
  if (bias != nullptr) e = __bfloat162float(bias[o]);
  if (rank > 0) {
    float l = 0.f;
    for (long long k = 0; k < rank; k++)
      l = fmaf(__bfloat162float(lora_h[r * ldh + k]), __bfloat162float(lora_b[o * rank + k]), l);
    e += lora_scale * l;
  }
  return e;
}

// nf4_store writes v (+ beta · the old value) into y[at], fp32 or rounded to bf16.
__device__ __forceinline__ void nf4_store(void* y, long long at, float v, float beta, long long y_f32) {
  if (y_f32) {
    float* yf = reinterpret_cast<float*>(y);
    yf[at] = v + (beta != 0.f ? beta * yf[at] : 0.f);
  } else {
    __nv_bfloat16* yb = reinterpret_cast<__nv_bfloat16*>(y);
    yb[at] = __float2bfloat16_rn(v + (beta != 0.f ? beta * __bfloat162float(yb[at]) : 0.f));
  }
}

// nf4_mma16816 is c += A·B for one mma.sync m16n8k16 (bf16 operands in the PTX fragment registers, fp32 c).
__device__ __forceinline__ void nf4_mma16816(float* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                                             unsigned b0, unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// nf4_word4 dequantizes the 4 code bytes of w (8 inputs) with scale sc: r[k] = bf16x2 of byte k, its high
// nibble (the even input) in the low half. tbl is the shared-space address of the 16 levels, a multiple of
// 256: a level's address is tbl with its low byte replaced by 4 · nibble, so after one shift and one mask per
// half word (4 · the nibble of each byte) one byte permute per input makes the address.
__device__ __forceinline__ void nf4_word4(unsigned w, float sc, unsigned tbl, unsigned* r) {
  const unsigned hi = (w >> 2) & 0x3C3C3C3Cu, lo = (w << 2) & 0x3C3C3C3Cu;
#pragma unroll
  for (int k = 0; k < 4; k++) {
    float a, b;
    asm volatile("ld.shared.f32 %0, [%1];" : "=f"(a) : "r"(__byte_perm(hi, tbl, 0x7650u | k)));
    asm volatile("ld.shared.f32 %0, [%1];" : "=f"(b) : "r"(__byte_perm(lo, tbl, 0x7650u | k)));
    __nv_bfloat162 p = __floats2bfloat162_rn(__fmul_rn(a, sc), __fmul_rn(b, sc));
    r[k] = *reinterpret_cast<unsigned*>(&p);
  }
}

// NF4_GEMV_PARAMS and NF4_GEMV_ARGS are the parameter list and the forwarded arguments every NF4 GEMV and GEMM
// kernel shares (the host passes them in this order: gpu/ops NF4GEMVFusedOn).
#define NF4_GEMV_PARAMS                                                                                               \
  void* __restrict__ y, const __nv_bfloat16* __restrict__ x, const uint8_t* __restrict__ codes,                       \
      const uint8_t* __restrict__ absmax_q, const float* __restrict__ code2, const float* __restrict__ absmax2,       \
      float offset, float beta, long long rows, long long out, long long in, long long ldx, long long ldy,            \
      long long bs_shift, long long bs2_shift, long long y_f32, const __nv_bfloat16* __restrict__ bias,               \
      const __nv_bfloat16* __restrict__ lora_h, const __nv_bfloat16* __restrict__ lora_b, float lora_scale,           \
      long long ldh, long long rank
#define NF4_GEMV_ARGS                                                                                                 \
  y, x, codes, absmax_q, code2, absmax2, offset, beta, rows, out, in, ldx, ldy, bs_shift, bs2_shift, y_f32, bias,     \
      lora_h, lora_b, lora_scale, ldh, rank
