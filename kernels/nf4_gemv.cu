// nf4_gemv.cu: matrix products of a few rows straight from NF4 double-quantized weights (bitsandbytes layout),
// for decoding without a bf16 copy of the weight: nf4_gemv (one warp per output, any in a multiple of 8, up to
// 8 rows), nf4_gemv_mma_n8/n16/n32 (tensor cores, in a multiple of 32, up to 8/16/32 rows) and
// nf4_gemv_lv_n8/n16/n32 (tensor cores, the absmax factored out; in a multiple of 64). All compute
//   y[r, o] = Σ_i x[r, i] · W[o, i] + bias[o] + lora_scale · Σ_k h[r, k] · lora_b[o, k] + beta · y[r, o]
// with each W value rounded to bf16 exactly as nf4_dequant_bf16 writes it (so the operands are those of
// dequantizing then running the GEMM; the lv kernels round the level instead, see there), fp32 products and
// sums, one rounding of y when it is bf16 (33..96 rows: nf4_gemm.cu). bias (bf16 [out]) and the LoRA term
// (h bf16 [rows, rank], ldh apart; lora_b bf16 [out, rank]) are optional: a null pointer, or rank 0, leaves
// them out; nf4_mma.cuh has the pieces both files share.
//
// Conventions: see kernels/doc.go (extern "C", 64-bit scalars or pointers, float parameters allowed).
#include "nf4_mma.cuh"

#define NF4_GEMV_MAX_ROWS 8

// nf4_gemv computes y (see the top of this file) for r < rows ≤ 8, o < out, where W [out, in]
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
                                    long long y_f32,
                                    const __nv_bfloat16* __restrict__ bias,    // [out] or null
                                    const __nv_bfloat16* __restrict__ lora_h,  // [rows, rank], ldh apart
                                    const __nv_bfloat16* __restrict__ lora_b,  // [out, rank]
                                    float lora_scale, long long ldh, long long rank) {
  PDL_ENTRY();
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
    if (lane == 0 && r < rows)
      nf4_store(y, r * ldy64 + o, v + nf4_epilogue_extra(bias, lora_h, lora_b, lora_scale, r, o, ldh, rank), beta,
                y_f32);
  }
}

// ---- Tensor-core GEMV: nf4_gemv_mma_n8 / _n16 / _n32 ----
//
// y = x·Wᵀ (+ the epilogue terms above) as mma.sync m16n8k16 tiles with W as the 16-row A operand (16
// outputs per block) and x as the 8-column B operand (NT tiles of 8 rows: up to 8·NT rows). The sum over i
// does not care in which order the inputs meet, so the 16 k slots of each mma are filled with the elements a
// thread already holds instead of the PTX fragment's own columns: in a chunk of 128 inputs, thread (g, t)
// (g = lane / 4, t = lane % 4) loads 16 code bytes of outputs g and g + 8 — inputs 32t .. 32t + 31 — and the
// 64 bytes of x over the same inputs for rows g, g + 8, ... ; mma s (s = 0..7) takes inputs 32t + 4s .. +3,
// which fill A's slots {2t, 2t+1} (code byte 2s) and {2t+8, 2t+9} (byte 2s+1) and B's slots of the same
// numbers (x words 2s, 2s+1). 32 inputs share one absmax (blocksize a multiple of 32, in a multiple of 32),
// whose double-quantized scale is decoded once per thread and chunk. The 8 warps of a block split the
// chunks (two at a time, their loads issued together: the first pair's before the block's tables are built,
// each next pair's before the current pair's products, double-buffered in registers), and their partial
// tiles are added in shared memory in warp order (the result does not depend on timing). Codes must be 16-byte aligned, x's rows (ldx) too;
// the block sizes are powers of two, passed as their log2 (bs_shift, bs2_shift); out · in < 2^32.
// grid ceil(out / 16), block 256.
#define NF4_MMA_WARPS 8
#define NF4_MMA_U 2

// nf4_rows is what thread (g, t) of a block's tile of 16 outputs reads codes for: outputs g and g + 8 of the
// tile (clamped to the last output: those past the end are computed, not stored), their element indices ea and
// eb at the thread's first input, and the code bytes there (ca, cb).
struct nf4_rows {
  unsigned ea, eb;
  const uint8_t* ca;
  const uint8_t* cb;
};

// nf4_rows_at is nf4_rows of the tile at output o0, for a thread whose first input is first.
__device__ __forceinline__ nf4_rows nf4_rows_at(const uint8_t* codes, int o0, int g, int out, int in, unsigned first) {
  const int oa = min(o0 + g, out - 1), ob = min(o0 + g + 8, out - 1);
  nf4_rows r;
  r.ea = (unsigned)oa * (unsigned)in + first, r.eb = (unsigned)ob * (unsigned)in + first;
  r.ca = codes + r.ea / 2u, r.cb = codes + r.eb / 2u;
  return r;
}

// nf4_mma_load issues the code loads of chunks c0 .. c0 + NF4_MMA_U − 1 (those that exist; others are zero)
// and of their absmax bytes and second-level scales, whose scales are formed once the shared map is ready.
struct nf4_mma_chunk {
  uint4 qa[NF4_MMA_U], qb[NF4_MMA_U];
  unsigned aq[NF4_MMA_U], bq[NF4_MMA_U];  // absmax codes
  float a2[NF4_MMA_U], b2[NF4_MMA_U];     // second-level scales
};

__device__ __forceinline__ void nf4_mma_load(nf4_mma_chunk& k, int c0, int nch, int in, int t, nf4_rows w,
                                             unsigned bsh, unsigned bs2h, const uint8_t* __restrict__ absmax_q,
                                             const float* __restrict__ absmax2) {
#pragma unroll
  for (int u = 0; u < NF4_MMA_U; u++) {
    k.qa[u] = k.qb[u] = make_uint4(0, 0, 0, 0);
    k.aq[u] = k.bq[u] = 0;
    k.a2[u] = k.b2[u] = 0.f;
    if (c0 + u < nch && (c0 + u) * 128 + 32 * t < in) {
      k.qa[u] = __ldg(reinterpret_cast<const uint4*>(w.ca + (c0 + u) * 64));
      k.qb[u] = __ldg(reinterpret_cast<const uint4*>(w.cb + (c0 + u) * 64));
      const unsigned ba = (w.ea + 128u * (c0 + u)) >> bsh, bb = (w.eb + 128u * (c0 + u)) >> bsh;
      k.aq[u] = __ldg(absmax_q + ba);
      k.bq[u] = __ldg(absmax_q + bb);
      k.a2[u] = __ldg(absmax2 + (ba >> bs2h));
      k.b2[u] = __ldg(absmax2 + (bb >> bs2h));
    }
  }
}

// nf4_tile_store adds the block's 8 warps' tiles (acc [NT][4] of each lane) in warp order through red and
// stores y (+ the epilogue terms, + beta · y) for outputs o0 .. o0 + 15: accumulator i of tile j in lane ln is
// output o0 + g + 8·(i / 2), row 8j + 2t + i % 2 (g = ln / 4, t = ln % 4). Ends the tensor-core kernels.
template <int NT>
__device__ __forceinline__ void nf4_tile_store(float (*red)[NT * 4][32], const float (&acc)[NT][4], void* y, int o0,
                                               int rows, int out, long long ldy, float beta, long long y_f32,
                                               const __nv_bfloat16* __restrict__ bias,
                                               const __nv_bfloat16* __restrict__ lora_h,
                                               const __nv_bfloat16* __restrict__ lora_b, float lora_scale,
                                               long long ldh, long long rank) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int j = 0; j < NT; j++)
#pragma unroll
    for (int i = 0; i < 4; i++) red[warp][j * 4 + i][lane] = acc[j][i];
  __syncthreads();
  for (int e = threadIdx.x; e < NT * 4 * 32; e += blockDim.x) {
    const int ji = e >> 5, ln = e & 31;
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < NF4_MMA_WARPS; w++) v += red[w][ji][ln];
    const int i = ji & 3, j = ji >> 2;
    const int o = o0 + (ln >> 2) + 8 * (i >> 1), r = 8 * j + 2 * (ln & 3) + (i & 1);
    if (o < out && r < rows)
      nf4_store(y, r * ldy + o, v + nf4_epilogue_extra(bias, lora_h, lora_b, lora_scale, r, o, ldh, rank), beta, y_f32);
  }
}

template <int NT>
__device__ __forceinline__ void nf4_gemv_mma(void* __restrict__ y, const __nv_bfloat16* __restrict__ x,
                                             const uint8_t* __restrict__ codes, const uint8_t* __restrict__ absmax_q,
                                             const float* __restrict__ code2, const float* __restrict__ absmax2,
                                             float offset, float beta, long long rows64, long long out64,
                                             long long in64, long long ldx, long long ldy, long long bs_shift,
                                             long long bs2_shift, long long y_f32,
                                             const __nv_bfloat16* __restrict__ bias,
                                             const __nv_bfloat16* __restrict__ lora_h,
                                             const __nv_bfloat16* __restrict__ lora_b, float lora_scale,
                                             long long ldh, long long rank) {
  __shared__ float map[256];
  __shared__ float lvs[128];  // the 16 levels at its first multiple of 256 bytes (see nf4_word4)
  __shared__ float red[NF4_MMA_WARPS][NT * 4][32];
  // Element indices in 32 bits (out · in < 2^32, the launcher checks): 64-bit division is slow.
  const int rows = (int)rows64, out = (int)out64, in = (int)in64;
  const unsigned bsh = (unsigned)bs_shift, bs2h = (unsigned)bs2_shift;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int o0 = blockIdx.x * 16;
  const nf4_rows wr = nf4_rows_at(codes, o0, g, out, in, 32u * t);  // x rows past rows read the last one
  const int nch = (in + 127) / 128;
  const int stride = NF4_MMA_WARPS * NF4_MMA_U;
  // The first chunks' loads go out before the tables are built: their latency overlaps the prologue's.
  nf4_mma_chunk cur;
  nf4_mma_load(cur, warp * NF4_MMA_U, nch, in, t, wr, bsh, bs2h, absmax_q, absmax2);
  const unsigned tbl = ((unsigned)__cvta_generic_to_shared(lvs) + 255u) & ~255u;
  map[threadIdx.x] = code2[threadIdx.x];
  if (threadIdx.x < 16) asm volatile("st.shared.f32 [%0], %1;" ::"r"(tbl + 4u * threadIdx.x), "f"(kGemvLevels[threadIdx.x])
                                    : "memory");
  pdl_wait();  // the weight's loads and tables above overlap the previous kernel; x and y come after it
  __syncthreads();
  const __nv_bfloat16* xr[NT];
#pragma unroll
  for (int j = 0; j < NT; j++) xr[j] = x + (long long)min(8 * j + g, rows - 1) * ldx + 32 * t;
  float acc[NT][4];
#pragma unroll
  for (int j = 0; j < NT; j++)
#pragma unroll
    for (int i = 0; i < 4; i++) acc[j][i] = 0.f;
  for (int c0 = warp * NF4_MMA_U; c0 < nch; c0 += stride) {
    nf4_mma_chunk nxt;
    if (c0 + stride < nch)
      nf4_mma_load(nxt, c0 + stride, nch, in, t, wr, bsh, bs2h, absmax_q, absmax2);
    float sa[NF4_MMA_U], sb[NF4_MMA_U];
#pragma unroll
    for (int u = 0; u < NF4_MMA_U; u++) {
      // Rounded as bitsandbytes does it (absmax dequantized to fp32 first, then the offset added): no FMA.
      // A missing chunk has codes 0 and second-level scale 0: its scale is the offset, its A values ±0·offset.
      const bool ok = c0 + u < nch && (c0 + u) * 128 + 32 * t < in;
      sa[u] = ok ? __fadd_rn(__fmul_rn(map[cur.aq[u]], cur.a2[u]), offset) : 0.f;
      sb[u] = ok ? __fadd_rn(__fmul_rn(map[cur.bq[u]], cur.b2[u]), offset) : 0.f;
    }
#pragma unroll
    for (int u = 0; u < NF4_MMA_U; u++) {
      if (c0 + u >= nch) break;  // the same for the whole warp: mma.sync needs every lane
      const bool ok = (c0 + u) * 128 + 32 * t < in;
      const unsigned wa[4] = {cur.qa[u].x, cur.qa[u].y, cur.qa[u].z, cur.qa[u].w};
      const unsigned wb[4] = {cur.qb[u].x, cur.qb[u].y, cur.qb[u].z, cur.qb[u].w};
      // A lane past in reads its row's first inputs, times A = ±0 (its codes and scale are 0).
      const uint4* xc[NT];
#pragma unroll
      for (int j = 0; j < NT; j++) xc[j] = reinterpret_cast<const uint4*>(xr[j] + (ok ? (c0 + u) * 128 : 0));
#pragma unroll
      for (int m = 0; m < 4; m++) {  // code word m: inputs 32t + 8m .. +7, mmas s = 2m and 2m + 1
        unsigned ra[4], rb[4];
        nf4_word4(wa[m], sa[u], tbl, ra);
        nf4_word4(wb[m], sb[u], tbl, rb);
        uint4 xv[NT];
#pragma unroll
        for (int j = 0; j < NT; j++) xv[j] = __ldg(xc[j] + m);
#pragma unroll
        for (int j = 0; j < NT; j++) {
          nf4_mma16816(acc[j], ra[0], rb[0], ra[1], rb[1], xv[j].x, xv[j].y);
          nf4_mma16816(acc[j], ra[2], rb[2], ra[3], rb[3], xv[j].z, xv[j].w);
        }
      }
    }
    cur = nxt;
  }
  pdl_launch_dependents();  // the next kernel's blocks start once every block is past its main loop
  nf4_tile_store<NT>(red, acc, y, o0, rows, out, ldy, beta, y_f32, bias, lora_h, lora_b, lora_scale, ldh, rank);
}

#define NF4_GEMV_MMA(NAME, NT) \
  extern "C" __global__ void __launch_bounds__(256) NAME(NF4_GEMV_PARAMS) { nf4_gemv_mma<NT>(NF4_GEMV_ARGS); }

// nf4_gemv_mma_n8: rows ≤ 8; y [rows, out] (ldy apart), x [rows, in] (ldx apart), W [out, in] NF4.
NF4_GEMV_MMA(nf4_gemv_mma_n8, 1)
// nf4_gemv_mma_n16: rows ≤ 16.
NF4_GEMV_MMA(nf4_gemv_mma_n16, 2)
// nf4_gemv_mma_n32: rows ≤ 32.
NF4_GEMV_MMA(nf4_gemv_mma_n32, 4)

// ---- Factored tensor-core GEMV: nf4_gemv_lv_n8 / _n16 / _n32 ----
//
// y = x·Wᵀ (+ the epilogue terms above) with each weight taken as bf16(level) · absmax: the level rounded to
// bf16 and the block's fp32 absmax applied to the mma's fp32 output instead of to each weight, so a weight
// costs one table lookup per two instead of a lookup, a multiply and a rounding each. Its weights are as
// close to the NF4 values level · absmax as nf4_dequant_bf16's bf16(level · absmax) (both within 2^-9
// relative), rounded at another point. CPU twin: x · (bf16(level[c]) · absmax)ᵀ summed in fp32.
//
// mma.sync m16n8k16 with W as the 16-row A operand (16 outputs per block) and x as the B operand (NT tiles
// of 8 rows). Work comes in groups of 64 inputs of one absmax block (in and the block size multiples of 64):
// thread (g, t) (g = lane / 4, t = lane % 4) loads the 8 code bytes of outputs g and g + 8 over inputs
// 16t .. 16t + 15 of the group and the 32 bytes of x over the same inputs; mma s (s = 0..3) takes inputs
// 16t + 4s .. +3 into A's slots {2t, 2t+1} (code byte 2s, its two levels from a 256-entry bf16-pair table
// with a copy per lane, see nf4_lv_pair)
// and {2t+8, 2t+9} (byte 2s + 1), B's slots of the same numbers (x words 2s, 2s+1 of the 8 it holds). All 16
// inputs of the four mmas share one absmax per output, applied once per group: acc += absmax · (Σ of the
// four mmas). The 8 warps of a block split the groups (U at a time, their loads issued together, the first
// ones before the table is built), and their partial tiles are added in shared memory in warp order.
// Codes 8-byte aligned, x's rows (ldx) 16-byte aligned; block sizes powers of two passed as log2; out · in
// < 2^32. grid ceil(out / 16), block 256.

// nf4_lv_groups holds a thread's loads of U groups for its two outputs. With VEC (block size 64, in a
// multiple of 64·U, the second-level block size a multiple of U) the U groups of a round are U consecutive
// absmax bytes, 4-byte aligned, under one second-level scale: a 4-byte load per 4 codes and one scale per output
// instead of U of each (12 registers fewer at U = 4, so 5 blocks fit an SM where 4 did).
template <int U, bool VEC>
struct nf4_lv_groups {
  uint2 qa[U], qb[U];                              // code bytes of outputs g and g + 8
  unsigned aq[VEC ? U / 4 : U], bq[VEC ? U / 4 : U];  // absmax codes: one per group, or 4 per word
  float a2[VEC ? 1 : U], b2[VEC ? 1 : U];          // second-level scales
  // code and scale2 are group u's absmax code and second-level scale of output g (b: g + 8).
  __device__ __forceinline__ unsigned code(bool b, int u) const {
    const unsigned* q = b ? bq : aq;
    return VEC ? (q[u >> 2] >> (8 * (u & 3))) & 0xffu : q[u];
  }
  __device__ __forceinline__ float scale2(bool b, int u) const { return (b ? b2 : a2)[VEC ? 0 : u]; }
};

// nf4_lv_load issues the loads of groups c0 .. c0 + U − 1 (those below ngr; others are left zero; with VEC a
// round is whole or absent).
template <int U, bool VEC>
__device__ __forceinline__ void nf4_lv_load(nf4_lv_groups<U, VEC>& k, int c0, int ngr, nf4_rows w, unsigned bsh,
                                            unsigned bs2h, const uint8_t* __restrict__ absmax_q,
                                            const float* __restrict__ absmax2) {
#pragma unroll
  for (int u = 0; u < U; u++) {
    k.qa[u] = k.qb[u] = make_uint2(0, 0);
    if (c0 + u < ngr) {
      k.qa[u] = __ldg(reinterpret_cast<const uint2*>(w.ca + (c0 + u) * 32));
      k.qb[u] = __ldg(reinterpret_cast<const uint2*>(w.cb + (c0 + u) * 32));
    }
  }
  if (VEC) {
#pragma unroll
    for (int i = 0; i < (VEC ? U / 4 : 0); i++) k.aq[i] = k.bq[i] = 0;
    k.a2[0] = k.b2[0] = 0.f;
    if (c0 < ngr) {
      const unsigned ba = (w.ea + 64u * c0) >> bsh, bb = (w.eb + 64u * c0) >> bsh;
#pragma unroll
      for (int i = 0; i < (VEC ? U / 4 : 0); i++) {
        k.aq[i] = __ldg(reinterpret_cast<const unsigned*>(absmax_q + ba) + i);
        k.bq[i] = __ldg(reinterpret_cast<const unsigned*>(absmax_q + bb) + i);
      }
      k.a2[0] = __ldg(absmax2 + (ba >> bs2h));
      k.b2[0] = __ldg(absmax2 + (bb >> bs2h));
    }
  } else {
#pragma unroll
    for (int u = 0; u < U; u++) {
      k.aq[u] = k.bq[u] = 0;
      k.a2[u] = k.b2[u] = 0.f;
      if (c0 + u < ngr) {
        const unsigned ba = (w.ea + 64u * (c0 + u)) >> bsh, bb = (w.eb + 64u * (c0 + u)) >> bsh;
        k.aq[u] = __ldg(absmax_q + ba);
        k.bq[u] = __ldg(absmax_q + bb);
        k.a2[u] = __ldg(absmax2 + (ba >> bs2h));
        k.b2[u] = __ldg(absmax2 + (bb >> bs2h));
      }
    }
  }
}

// nf4_lv_pair is the bf16 pair of levels of code byte k of w (high nibble, the even input, in the low half)
// from the per-lane table lvt: entry e of lane l is word 32e + l, so the 32 lanes of a warp read 32 different
// banks whatever their bytes (lane4 = 4 · lane). One table of 256 words read by random bytes hit the busiest
// of its 32 banks about 3–4 times per warp: 5% slower at batch 1 than this one, 2.5 at 32 (H200).
__device__ __forceinline__ unsigned nf4_lv_pair(const unsigned* lvt, unsigned w, int k, unsigned lane4) {
  const unsigned off = (k == 0 ? (w << 7) & 0x7f80u : (w >> (8 * k - 7)) & 0x7f80u) | lane4;
  return *reinterpret_cast<const unsigned*>(reinterpret_cast<const char*>(lvt) + off);
}

// NF4_LV_WORDS is the per-lane table's size: 256 entries × 32 lanes (32 KB); the warps' partial tiles reuse
// its space after the main loop.
#define NF4_LV_WORDS (256 * 32)

template <int NT, int U, bool VEC>
__device__ __forceinline__ void nf4_gemv_lv(void* __restrict__ y, const __nv_bfloat16* __restrict__ x,
                                            const uint8_t* __restrict__ codes, const uint8_t* __restrict__ absmax_q,
                                            const float* __restrict__ code2, const float* __restrict__ absmax2,
                                            float offset, float beta, long long rows64, long long out64,
                                            long long in64, long long ldx, long long ldy, long long bs_shift,
                                            long long bs2_shift, long long y_f32, const __nv_bfloat16* __restrict__ bias,
                                            const __nv_bfloat16* __restrict__ lora_h,
                                            const __nv_bfloat16* __restrict__ lora_b, float lora_scale, long long ldh,
                                            long long rank) {
  __shared__ float map[256];
  __shared__ __align__(16) unsigned lvt[NF4_LV_WORDS];  // the per-lane table (nf4_lv_pair), then the tiles
  static_assert(NF4_MMA_WARPS * NT * 4 * 32 <= NF4_LV_WORDS, "partial tiles exceed the table's space");
  float(*red)[NT * 4][32] = reinterpret_cast<float(*)[NT * 4][32]>(lvt);
  const int rows = (int)rows64, out = (int)out64, in = (int)in64;
  const unsigned bsh = (unsigned)bs_shift, bs2h = (unsigned)bs2_shift;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int o0 = blockIdx.x * 16;
  const nf4_rows wr = nf4_rows_at(codes, o0, g, out, in, 16u * t);  // x rows past rows read the last one
  const int ngr = in / 64, stride = NF4_MMA_WARPS * U;
  nf4_lv_groups<U, VEC> cur;
  nf4_lv_load(cur, warp * U, ngr, wr, bsh, bs2h, absmax_q, absmax2);
  map[threadIdx.x] = code2[threadIdx.x];
  const unsigned lane4 = 4u * (unsigned)lane;
  // 16-byte stores of 4 lanes' copies, consecutive across the warp (no bank conflicts): entry j / 8.
  for (int j = threadIdx.x; j < NF4_LV_WORDS / 4; j += blockDim.x) {
    const __nv_bfloat162 p = __floats2bfloat162_rn(kGemvLevels[j >> 7], kGemvLevels[(j >> 3) & 15]);
    const unsigned u = *reinterpret_cast<const unsigned*>(&p);
    reinterpret_cast<uint4*>(lvt)[j] = make_uint4(u, u, u, u);
  }
  pdl_wait();  // the weight's loads and the table above overlap the previous kernel; x and y come after it
  __syncthreads();
  // x over this thread's inputs of group warp · U, then moved along group by group.
  const uint4* xp[NT];
#pragma unroll
  for (int j = 0; j < NT; j++)
    xp[j] = reinterpret_cast<const uint4*>(x + (long long)min(8 * j + g, rows - 1) * ldx + 16 * t +
                                           64 * warp * U);
  float acc[NT][4];
#pragma unroll
  for (int j = 0; j < NT; j++)
#pragma unroll
    for (int i = 0; i < 4; i++) acc[j][i] = 0.f;
  for (int c0 = warp * U; c0 < ngr; c0 += stride) {
#pragma unroll
    for (int u = 0; u < U; u++) {
      if (c0 + u >= ngr) break;  // the same for the whole warp: mma.sync needs every lane
      // Rounded as bitsandbytes does it (absmax dequantized to fp32 first, then the offset added): no FMA.
      const float sa = __fadd_rn(__fmul_rn(map[cur.code(false, u)], cur.scale2(false, u)), offset);
      const float sb = __fadd_rn(__fmul_rn(map[cur.code(true, u)], cur.scale2(true, u)), offset);
      uint4 xv[NT][2];
#pragma unroll
      for (int j = 0; j < NT; j++) {
        xv[j][0] = __ldg(xp[j] + 8 * u);
        xv[j][1] = __ldg(xp[j] + 8 * u + 1);
      }
      float part[NT][4];
#pragma unroll
      for (int j = 0; j < NT; j++)
#pragma unroll
        for (int i = 0; i < 4; i++) part[j][i] = 0.f;
#pragma unroll
      for (int s = 0; s < 4; s++) {  // code bytes 2s, 2s + 1: inputs 16t + 4s .. +3
        const unsigned wa = s < 2 ? cur.qa[u].x : cur.qa[u].y, wb = s < 2 ? cur.qb[u].x : cur.qb[u].y;
        const int k0 = 2 * (s & 1);
        const unsigned a0 = nf4_lv_pair(lvt, wa, k0, lane4);
        const unsigned a1 = nf4_lv_pair(lvt, wb, k0, lane4);
        const unsigned a2 = nf4_lv_pair(lvt, wa, k0 + 1, lane4);
        const unsigned a3 = nf4_lv_pair(lvt, wb, k0 + 1, lane4);
#pragma unroll
        for (int j = 0; j < NT; j++) {
          const uint4 v = xv[j][s >> 1];
          const unsigned b0 = (s & 1) ? v.z : v.x, b1 = (s & 1) ? v.w : v.y;
          nf4_mma16816(part[j], a0, a1, a2, a3, b0, b1);
        }
      }
#pragma unroll
      for (int j = 0; j < NT; j++) {  // accumulators 0, 1: output g; 2, 3: output g + 8
        acc[j][0] = fmaf(sa, part[j][0], acc[j][0]);
        acc[j][1] = fmaf(sa, part[j][1], acc[j][1]);
        acc[j][2] = fmaf(sb, part[j][2], acc[j][2]);
        acc[j][3] = fmaf(sb, part[j][3], acc[j][3]);
      }
    }
    if (c0 + stride < ngr) nf4_lv_load(cur, c0 + stride, ngr, wr, bsh, bs2h, absmax_q, absmax2);
#pragma unroll
    for (int j = 0; j < NT; j++) xp[j] += 8 * stride;
  }
  pdl_launch_dependents();  // the next kernel's blocks start once every block is past its main loop
  __syncthreads();          // every warp is done with the table before the tiles overwrite it
  nf4_tile_store<NT>(red, acc, y, o0, rows, out, ldy, beta, y_f32, bias, lora_h, lora_b, lora_scale, ldh, rank);
}

#define NF4_GEMV_LV(NAME, NT, U, VEC, MINB)                                      \
  extern "C" __global__ void __launch_bounds__(256, MINB) NAME(NF4_GEMV_PARAMS) { \
    nf4_gemv_lv<NT, U, VEC>(NF4_GEMV_ARGS);                                      \
  }

// nf4_gemv_lv_n8: rows ≤ 8; y [rows, out] (ldy apart), x [rows, in] (ldx apart), W [out, in] NF4.
NF4_GEMV_LV(nf4_gemv_lv_n8, 1, 4, false, 4)
// nf4_gemv_lv_n16: rows ≤ 16.
NF4_GEMV_LV(nf4_gemv_lv_n16, 2, 4, false, 3)
// nf4_gemv_lv_n32: rows ≤ 32.
NF4_GEMV_LV(nf4_gemv_lv_n32, 4, 4, false, 2)
// nf4_gemv_lv_n8u8, _n16u8: 8 groups in flight per warp instead of 4, at 2 blocks per SM (for weights whose
// output tiles fit in one wave of those).
NF4_GEMV_LV(nf4_gemv_lv_n8u8, 1, 8, false, 2)
NF4_GEMV_LV(nf4_gemv_lv_n16u8, 2, 8, false, 2)
// The same with VEC (a _v suffix), one more block per SM each where the registers allow it.
NF4_GEMV_LV(nf4_gemv_lv_n8_v, 1, 4, true, 5)
NF4_GEMV_LV(nf4_gemv_lv_n16_v, 2, 4, true, 3)
NF4_GEMV_LV(nf4_gemv_lv_n32_v, 4, 4, true, 2)
NF4_GEMV_LV(nf4_gemv_lv_n8u8_v, 1, 8, true, 3)
NF4_GEMV_LV(nf4_gemv_lv_n16u8_v, 2, 8, true, 2)
