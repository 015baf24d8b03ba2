// nf4_gemm.cu: matrix products of 33..96 rows straight from NF4 double-quantized weights (bitsandbytes layout)
// on tensor cores, for decode steps and short prefills without a bf16 copy of the weight (gpu/ops NF4GEMVFused
// above 32 rows). They compute what the kernels of nf4_gemv.cu compute (see there),
//   y[r, o] = Σ_i x[r, i] · W[o, i] + bias[o] + lora_scale · Σ_k h[r, k] · lora_b[o, k] + beta · y[r, o],
// with each W value rounded to bf16 exactly as nf4_dequant_bf16 writes it, fp32 products and sums.
//
// Conventions: see kernels/doc.go (extern "C", 64-bit scalars or pointers, float parameters allowed).
#include "nf4_mma.cuh"

// ---- Tensor-core GEMM from NF4 for 33..96 rows: nf4_gemm_n48 / _n64 / _n96, nf4_gemm_reduce ----
//
// y = x·Wᵀ (+ nf4_mma.cuh's epilogue terms) for up to 8·NT rows, each weight bf16(level · absmax) as
// nf4_dequant_bf16 writes it (the exact kernels' operands), fp32 products and sums. A block takes 128 outputs
// (NF4_GEMM_WARPS warps, two 16-output tiles each) and a slice of the inputs (grid.y splits them; each
// split writes fp32 partial sums part [grid.y, rows, out] that nf4_gemm_reduce adds in split order, or, with
// one split, stores y itself, both through a tile in shared memory at the end). Per group of 64 inputs, one stage of a NF4_GEMM_STAGES-deep cp.async pipeline brings the block's x
// [8·NT rows, 64] and its 128 outputs' code bytes [128, 32] into shared memory, so every thread's loads of a
// group are issued stages ahead and no registers wait on them. The absmax codes of 4 groups are one 4-byte
// word per output (block size 64, in a multiple of 256), loaded 4 groups ahead. mma.sync m16n8k16, W the A
// operand, x the B operand, with the inputs of a group in the lv kernels' order: thread (g, t) takes inputs
// 16t .. 16t + 15 of outputs g and g + 8 of each tile, dequantized a half (8 inputs) at a time (nf4_word4),
// and the same inputs of x's rows 8j + g (one 16-byte shared load per half and row tile, on 8 distinct bank
// quads per phase). out · in < 2^32; x's rows 16-byte aligned. grid (ceil(out / 128), splits), block 128,
// dynamic shared memory NF4_GEMM_SMEM(NT); gps groups of 64 inputs per split, a multiple of 4.
#define NF4_GEMM_WARPS 4
#define NF4_GEMM_STAGES 4
#define NF4_GEMM_XS 72  // shared row stride of a staged x group, bf16 (64 + 8: 144 bytes)
#define NF4_GEMM_OUTS (NF4_GEMM_WARPS * 32)  // outputs per block
// one stage: x [8·NT][72] bf16, then the codes [128][32] bytes
#define NF4_GEMM_STAGE(NT) (8 * (NT) * NF4_GEMM_XS * 2 + NF4_GEMM_OUTS * 32)
#define NF4_GEMM_SMEM(NT) (NF4_GEMM_STAGES * NF4_GEMM_STAGE(NT))

__device__ __forceinline__ void nf4_cp16(unsigned dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}

template <int NT>
__device__ __forceinline__ void nf4_gemm(void* __restrict__ y, const __nv_bfloat16* __restrict__ x,
                                         const uint8_t* __restrict__ codes, const uint8_t* __restrict__ absmax_q,
                                         const float* __restrict__ code2, const float* __restrict__ absmax2,
                                         float offset, float beta, long long rows64, long long out64, long long in64,
                                         long long ldx, long long ldy, long long bs2_shift, long long y_f32,
                                         const __nv_bfloat16* __restrict__ bias,
                                         const __nv_bfloat16* __restrict__ lora_h,
                                         const __nv_bfloat16* __restrict__ lora_b, float lora_scale, long long ldh,
                                         long long rank, float* __restrict__ part, long long gps) {
  constexpr int XR = 8 * NT;  // staged x rows
  constexpr int STAGE = NF4_GEMM_STAGE(NT), OUTS = NF4_GEMM_OUTS;
  extern __shared__ __align__(16) unsigned char nf4_gemm_smem[];
  __shared__ float map[256];
  __shared__ float lvs[128];  // the 16 levels at its first multiple of 256 bytes (nf4_word4)
  const int rows = (int)rows64, out = (int)out64, in = (int)in64;
  const unsigned bs2h = (unsigned)bs2_shift;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int ob = blockIdx.x * OUTS;
  const int ngr = in / 64, c0 = blockIdx.y * (int)gps, n = min(ngr, c0 + (int)gps) - c0;
  const unsigned sbase = (unsigned)__cvta_generic_to_shared(nf4_gemm_smem);
  const unsigned tbl = ((unsigned)__cvta_generic_to_shared(lvs) + 255u) & ~255u;
  for (int i = threadIdx.x; i < 256; i += blockDim.x) map[i] = code2[i];
  if (threadIdx.x < 16) asm volatile("st.shared.f32 [%0], %1;" ::"r"(tbl + 4u * threadIdx.x), "f"(kGemvLevels[threadIdx.x])
                                    : "memory");
  // The absmax word index (4 groups per word) of the first group of the thread's 4 outputs (tile m, row g
  // or g + 8), each clamped to the last output (computed, not stored).
  unsigned aw[2][2];
#pragma unroll
  for (int m = 0; m < 2; m++)
#pragma unroll
    for (int h = 0; h < 2; h++)
      aw[m][h] = ((unsigned)min(ob + 32 * warp + 16 * m + g + 8 * h, out - 1) * (unsigned)ngr + (unsigned)c0) >> 2;
  pdl_wait();  // x, y and part come from or go to the kernels before; the weight's loads are after it too
  // issue stages group k of the split: x's rows (those below rows) and the 128 outputs' code bytes.
  auto issue = [&](int k) {
    if (k < n) {
      const unsigned st = sbase + (unsigned)((k % NF4_GEMM_STAGES) * STAGE);
      const __nv_bfloat16* src = x + (long long)(c0 + k) * 64;
      for (int i = threadIdx.x; i < rows * 8; i += blockDim.x) {
        const int r = i >> 3, p = (i & 7) * 8;
        nf4_cp16(st + (unsigned)(r * NF4_GEMM_XS + p) * 2u, src + (long long)r * ldx + p);
      }
      const unsigned sc = st + XR * NF4_GEMM_XS * 2;
      for (int i = threadIdx.x; i < OUTS * 2; i += blockDim.x) {
        const int o = min(ob + (i >> 1), out - 1);
        nf4_cp16(sc + (unsigned)i * 16u, codes + ((size_t)o * (size_t)in) / 2 + (size_t)(c0 + k) * 32 + (i & 1) * 16);
      }
    }
    asm volatile("cp.async.commit_group;\n" ::);
  };
#pragma unroll
  for (int k = 0; k < NF4_GEMM_STAGES - 1; k++) issue(k);
  // The absmax words of groups 4q .. 4q + 3 (wc) and of the next four (wn), with their second-level scales;
  // word loads word q of output (m, h) (q past the split's last word: the first, loaded and not used).
  unsigned wc[2][2], wn[2][2];
  float a2c[2][2], a2n[2][2];
  auto word = [&](int m, int h, int q, unsigned& w, float& a2) {
    const unsigned i = aw[m][h] + (4 * q < n ? (unsigned)q : 0u);
    w = __ldg(reinterpret_cast<const unsigned*>(absmax_q) + i);
    a2 = __ldg(absmax2 + ((i * 4u) >> bs2h));
  };
#pragma unroll
  for (int m = 0; m < 2; m++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      word(m, h, 0, wc[m][h], a2c[m][h]);
      word(m, h, 1, wn[m][h], a2n[m][h]);
    }
  float acc[2][NT][4];
#pragma unroll
  for (int m = 0; m < 2; m++)
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
      for (int i = 0; i < 4; i++) acc[m][j][i] = 0.f;
  __syncthreads();  // the tables
  for (int k = 0; k < n; k++) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(NF4_GEMM_STAGES - 2));
    __syncthreads();  // stage k landed for every thread; stage k - 1 fully read
    issue(k + NF4_GEMM_STAGES - 1);
    if (k > 0 && (k & 3) == 0) {  // the next four groups' absmax words
#pragma unroll
      for (int m = 0; m < 2; m++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
          wc[m][h] = wn[m][h], a2c[m][h] = a2n[m][h];
          word(m, h, (k >> 2) + 1, wn[m][h], a2n[m][h]);
        }
    }
    const unsigned st = sbase + (unsigned)((k % NF4_GEMM_STAGES) * STAGE);
    const unsigned sx = st + (unsigned)(g * NF4_GEMM_XS + 16 * t) * 2u;   // x row g, input 16t
    const unsigned scd = st + XR * NF4_GEMM_XS * 2 + (unsigned)(32 * warp + g) * 32u + 8u * t;
    float sc[2][2];
    uint2 q[2][2];
#pragma unroll
    for (int m = 0; m < 2; m++)
#pragma unroll
      for (int h = 0; h < 2; h++) {
        // Rounded as bitsandbytes does it (absmax dequantized to fp32 first, then the offset added): no FMA.
        sc[m][h] = __fadd_rn(__fmul_rn(map[(wc[m][h] >> (8 * (k & 3))) & 255u], a2c[m][h]), offset);
        asm volatile("ld.shared.v2.u32 {%0, %1}, [%2];"
                     : "=r"(q[m][h].x), "=r"(q[m][h].y)
                     : "r"(scd + (unsigned)(16 * m + 8 * h) * 32u));
      }
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {  // inputs 16t + 8hf .. + 7: mma k-steps s = 2hf, 2hf + 1
      unsigned a[2][2][4];  // [tile][output g, g + 8][code byte of the half]
#pragma unroll
      for (int m = 0; m < 2; m++)
#pragma unroll
        for (int h = 0; h < 2; h++) nf4_word4(hf ? q[m][h].y : q[m][h].x, sc[m][h], tbl, a[m][h]);
#pragma unroll
      for (int j = 0; j < NT; j++) {
        unsigned b[4];
        asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];"
                     : "=r"(b[0]), "=r"(b[1]), "=r"(b[2]), "=r"(b[3])
                     : "r"(sx + (unsigned)(8 * j * NF4_GEMM_XS + 8 * hf) * 2u));
#pragma unroll
        for (int s = 0; s < 2; s++)  // code bytes 2s, 2s + 1 of the half: inputs 16t + 8hf + 4s .. +3
#pragma unroll
          for (int m = 0; m < 2; m++)
            nf4_mma16816(acc[m][j], a[m][0][2 * s], a[m][1][2 * s], a[m][0][2 * s + 1], a[m][1][2 * s + 1], b[2 * s],
                         b[2 * s + 1]);
      }
    }
  }
  asm volatile("cp.async.wait_group 0;\n" ::);
  __syncthreads();  // every stage read: its memory holds the output tile next
  pdl_launch_dependents();
  // Accumulator i of tile (m, j) in lane (g, t) is the block's output 32·warp + 16m + g + 8·(i / 2), row
  // 8j + 2t + i % 2. They go to a tile [8·NT][TS] fp32 in shared memory (TS = OUTS + 4: lanes write 32
  // distinct banks), then out a row at a time, consecutive threads on consecutive outputs: one copy of the
  // epilogue's code instead of one per accumulator (the module's JIT time at load).
  constexpr int TS = OUTS + 4;
  float* tile = reinterpret_cast<float*>(nf4_gemm_smem);
#pragma unroll
  for (int m = 0; m < 2; m++)
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
      for (int i = 0; i < 4; i++)
        tile[(8 * j + 2 * t + (i & 1)) * TS + 32 * warp + 16 * m + g + 8 * (i >> 1)] = acc[m][j][i];
  __syncthreads();
  for (int e = threadIdx.x; e < rows * OUTS; e += blockDim.x) {
    const int r = e / OUTS, o = ob + e % OUTS;
    if (o >= out) continue;
    const float v = tile[r * TS + e % OUTS];
    if (gridDim.y == 1) {
      nf4_store(y, r * ldy + o, v + nf4_epilogue_extra(bias, lora_h, lora_b, lora_scale, r, o, ldh, rank), beta,
                y_f32);
    } else {
      part[((long long)blockIdx.y * rows + r) * out + o] = v;
    }
  }
}

// The entry points share NF4_GEMV_PARAMS (bs_shift unused: the block size is 64) and add the partial sums'
// room and the groups per split. y [rows, out] (ldy apart), x [rows, in] (ldx apart), W [out, in] NF4.
// Measured on an H200 (scripts/bench/NOTES.md, eighteenth session): 8 warps a block (256 outputs, half the
// x traffic from L2), x read through L1 (cp.async.ca) and more splits were each slower or no faster.
#define NF4_GEMM(NAME, NT, MINB)                                                                          \
  extern "C" __global__ void __launch_bounds__(NF4_GEMM_WARPS * 32, MINB)                                \
      NAME(NF4_GEMV_PARAMS, float* __restrict__ part, long long gps) {                                      \
    nf4_gemm<NT>(y, x, codes, absmax_q, code2, absmax2, offset, beta, rows, out, in, ldx,  \
                                 ldy, bs2_shift, y_f32, bias, lora_h, lora_b, lora_scale, ldh, rank, part,  \
                                 gps);                                                                       \
  }
// nf4_gemm_n48: rows ≤ 48 (162 registers with nvcc 11.8 for sm_90, 3 blocks per SM).
NF4_GEMM(nf4_gemm_n48, 6, 3)
// nf4_gemm_n64: rows ≤ 64 (168 registers, 3 blocks per SM).
NF4_GEMM(nf4_gemm_n64, 8, 3)
// nf4_gemm_n96: rows ≤ 96 (214 registers, 2 blocks per SM: at 3, 168 registers spilled and 96 rows decoded
// 11.97 against 11.24 ms a step).
NF4_GEMM(nf4_gemm_n96, 12, 2)

// nf4_gemm_reduce adds nf4_gemm's splits partial sums part [splits, rows, out] in split order and stores y
// (+ the epilogue terms, + beta · y). grid ceil(rows · out / 256), block 256.
extern "C" __global__ void nf4_gemm_reduce(void* __restrict__ y, const float* __restrict__ part, long long splits,
                                           long long rows, long long out, long long ldy, float beta, long long y_f32,
                                           const __nv_bfloat16* __restrict__ bias,
                                           const __nv_bfloat16* __restrict__ lora_h,
                                           const __nv_bfloat16* __restrict__ lora_b, float lora_scale, long long ldh,
                                           long long rank) {
  PDL_ENTRY();
  const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= rows * out) return;
  const long long r = e / out, o = e % out;
  float v = 0.f;
  for (long long s = 0; s < splits; s++) v += part[s * rows * out + e];
  nf4_store(y, r * ldy + o, v + nf4_epilogue_extra(bias, lora_h, lora_b, lora_scale, r, o, ldh, rank), beta, y_f32);
}
