// nf4_wgmma.cu: matrix products of 33..96 rows straight from NF4 double-quantized weights (bitsandbytes
// layout) on Hopper's warpgroup tensor-core instructions (wgmma, sm_90a), for decode steps and short prefills
// without a bf16 copy of the weight (gpu/ops NF4GEMVFused above 32 rows on compute capability 9.0). They
// compute what nf4_gemm_n* compute (see nf4_gemm.cu),
//   y[r, o] = Σ_i x[r, i] · W[o, i] + bias[o] + lora_scale · Σ_k h[r, k] · lora_b[o, k] + beta · y[r, o],
// with each W value rounded to bf16 exactly as nf4_dequant_bf16 writes it (bf16(level · absmax)), fp32
// products and sums.
//
// Built for compute_90 by nvcc 11.8 and its PTX header raised to ISA 8.0 / sm_90a (Makefile): nvcc 11.8 does
// not know wgmma, so the instructions are inline PTX, which the driver's JIT assembles.
//
// Conventions: see kernels/doc.go (extern "C", 64-bit scalars or pointers, float parameters allowed).
#include "nf4_mma.cuh"

// ---- nf4_wgmma_n48 / _n64 / _n96 ----
//
// A block is two warpgroups (8 warps, 256 threads) and takes 128 outputs, warpgroup w's wgmma the 64 outputs
// 64w .., and a slice of the inputs (grid.y splits them as nf4_gemm's do; partial sums part [grid.y, rows,
// out] for nf4_gemm_reduce, or y itself with one split). Per group of 64 inputs:
// - its x tile [N rows, 64] and the 128 outputs' code bytes [128, 32] come through an S-deep cp.async pipeline
//   into shared memory (the codes' rows 48 bytes apart: a warp's 4-byte loads of them hit 32 distinct banks),
//   issued S − 2 groups ahead (a stage is refilled once both warpgroups' products of it have completed);
// - every thread dequantizes 4 chunks of 8 inputs exactly (bf16(level · absmax), nf4_word4) into one of two
//   bf16 weight tiles [128, 64] in shared memory;
// - each warpgroup's four wgmma.mma_async m64nNk16 (A = its half of the weight tile, B = the x tile, both from
//   shared memory, fp32 accumulators in registers) run while the next group is dequantized.
// Both tiles are in wgmma's no-swizzle K-major layout: core matrices of 8 rows × 8 inputs (16 bytes a row,
// 128 bytes each), row r and input chunk c (8 inputs) of a 64-input group at (r / 8) · 1024 + c · 128 + (r % 8)
// · 16 bytes (leading byte offset 128 between chunks, stride byte offset 1024 between groups of 8 rows). Thread
// j dequantizes chunk c = (j / 8) % 8 of outputs 8 · (j / 64 + 4u) + j % 8 (u = 0..3), so the 8 threads of a
// quarter warp store 128 consecutive bytes; copy i of an x tile is row 8 · (i / 64) + i % 8, chunk (i / 8) % 8,
// which lands at byte 16i.
// in a multiple of 256, absmax block size 64 (the absmax codes of 4 groups are one 4-byte word), out · in <
// 2^32, x's rows 16-byte aligned. grid (ceil(out / 128), splits), block 256, dynamic shared memory
// NF4_WG_SMEM(N, S); gps groups of 64 inputs per split, a multiple of 4.
#define NF4_WG_XT(N) ((N) * 128)                       // bytes of a staged x tile
#define NF4_WG_CS 48                                   // bytes between two outputs' staged codes
#define NF4_WG_ST(N) (NF4_WG_XT(N) + 128 * NF4_WG_CS)  // bytes of a stage: the x tile, then the codes
#define NF4_WG_WT (128 * 128)                          // bytes of a weight tile
#define NF4_WG_SMEM(N, S) ((S) * NF4_WG_ST(N) + 2 * NF4_WG_WT)

// wg_desc is the wgmma shared-memory matrix descriptor of the tile at shared address addr: no swizzle, leading
// byte offset 128, stride byte offset 1024 (in units of 16 bytes in the descriptor).
__device__ __forceinline__ uint64_t wg_desc(unsigned addr) {
  return (uint64_t)((addr & 0x3FFFFu) >> 4) | ((uint64_t)(128 >> 4) << 16) | ((uint64_t)(1024 >> 4) << 32);
}

// wg_mma<N> is d += A · Bᵀ for one wgmma m64nNk16 (bf16 operands from shared memory through descriptors da,
// db; fp32 d, N / 2 registers a thread).
template <int N>
__device__ __forceinline__ void wg_mma(float* d, uint64_t da, uint64_t db);
template <>
__device__ __forceinline__ void wg_mma<48>(float* d, uint64_t da, uint64_t db) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %26, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n48k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23}, %24, %25, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23])
      : "l"(da), "l"(db), "r"(1));
}
template <>
__device__ __forceinline__ void wg_mma<64>(float* d, uint64_t da, uint64_t db) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(1));
}
template <>
__device__ __forceinline__ void wg_mma<96>(float* d, uint64_t da, uint64_t db) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %50, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n96k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47}, %48, %49, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47])
      : "l"(da), "l"(db), "r"(1));
}

__device__ __forceinline__ void wg_cp16(unsigned dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}

template <int N, int S>
__device__ __forceinline__ void nf4_wgmma(void* __restrict__ y, const __nv_bfloat16* __restrict__ x,
                                          const uint8_t* __restrict__ codes, const uint8_t* __restrict__ absmax_q,
                                          const float* __restrict__ code2, const float* __restrict__ absmax2,
                                          float offset, float beta, long long rows64, long long out64, long long in64,
                                          long long ldx, long long ldy, long long bs2_shift, long long y_f32,
                                          const __nv_bfloat16* __restrict__ bias,
                                          const __nv_bfloat16* __restrict__ lora_h,
                                          const __nv_bfloat16* __restrict__ lora_b, float lora_scale, long long ldh,
                                          long long rank, float* __restrict__ part, long long gps) {
  constexpr int XT = NF4_WG_XT(N), ST = NF4_WG_ST(N), WT = NF4_WG_WT, NX = (N * 8 + 255) / 256;
  extern __shared__ __align__(1024) unsigned char nf4_wg_smem[];  // S stages, then 2 weight tiles
  __shared__ float map[256];
  __shared__ float lvs[128];  // the 16 levels at its first multiple of 256 bytes (nf4_word4)
  const int rows = (int)rows64, out = (int)out64, in = (int)in64;
  const unsigned bs2h = (unsigned)bs2_shift;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int wg = tid >> 7;  // warpgroup
  const int ob = blockIdx.x * 128;
  const int ngr = in / 64, c0 = blockIdx.y * (int)gps, n = min(ngr, c0 + (int)gps) - c0;
  const unsigned xs0 = (unsigned)__cvta_generic_to_shared(nf4_wg_smem), ws0 = xs0 + S * ST;
  const unsigned tbl = ((unsigned)__cvta_generic_to_shared(lvs) + 255u) & ~255u;
  for (int i = tid; i < 256; i += blockDim.x) map[i] = code2[i];
  if (tid < 16) asm volatile("st.shared.f32 [%0], %1;" ::"r"(tbl + 4u * tid), "f"(kGemvLevels[tid]) : "memory");
  // This thread's chunk c of outputs m = 8 · (tid / 64 + 4u) + tid % 8: where its code word sits in a stage,
  // the absmax word index of its first group (4 groups a word), and where the chunk goes in a weight tile.
  const int c = (tid >> 3) & 7;
  unsigned aw[4], wst[4], cst[4];
#pragma unroll
  for (int u = 0; u < 4; u++) {
    const int m = 8 * ((tid >> 6) + 4 * u) + (tid & 7);
    const unsigned o = (unsigned)min(ob + m, out - 1);
    aw[u] = (o * (unsigned)ngr + (unsigned)c0) >> 2;
    wst[u] = (unsigned)((m >> 3) * 1024 + c * 128 + (m & 7) * 16);
    cst[u] = (unsigned)(XT + m * NF4_WG_CS + c * 4);
  }
  // The copies this thread makes of each group: half tid % 2 of output tid / 2's code bytes, and x copies
  // tid + 256j (those of rows below rows), their sources at the split's first group.
  const uint8_t* csrc =
      codes + (size_t)min(ob + (tid >> 1), out - 1) * (size_t)in / 2 + (size_t)c0 * 32 + (tid & 1) * 16;
  const __nv_bfloat16* xsrc[NX];
  bool xon[NX];
#pragma unroll
  for (int j = 0; j < NX; j++) {
    const int i = tid + 256 * j, r = 8 * (i >> 6) + (i & 7);
    xon[j] = i < N * 8 && r < rows;
    xsrc[j] = x + (long long)min(r, rows - 1) * ldx + (long long)c0 * 64 + 8 * ((i >> 3) & 7);
  }
  // The absmax words of groups 4p .. 4p + 3 (wc) and the next four (wn), with their second-level scales.
  unsigned wc[4], wn[4];
  float a2c[4], a2n[4];
  auto word = [&](int u, int p, unsigned& w, float& a2) {
    const unsigned i = aw[u] + (4 * p < n ? (unsigned)p : 0u);
    w = __ldg(reinterpret_cast<const unsigned*>(absmax_q) + i);
    a2 = __ldg(absmax2 + ((i * 4u) >> bs2h));
  };
#pragma unroll
  for (int u = 0; u < 4; u++) {
    word(u, 0, wc[u], a2c[u]);
    word(u, 1, wn[u], a2n[u]);
  }
  pdl_wait();  // x, y and part come from or go to the kernels before
  // issue stages group k of the split (the x tile's rows past rows feed only columns of the product that are
  // never stored).
  auto issue = [&](int k) {
    if (k < n) {
      const unsigned st = xs0 + (unsigned)((k % S) * ST);
      wg_cp16(st + XT + (unsigned)((tid >> 1) * NF4_WG_CS + (tid & 1) * 16), csrc + (size_t)k * 32);
#pragma unroll
      for (int j = 0; j < NX; j++)
        if (xon[j]) wg_cp16(st + 16u * (unsigned)(tid + 256 * j), xsrc[j] + (long long)k * 64);
    }
    asm volatile("cp.async.commit_group;\n" ::);
  };
#pragma unroll
  for (int k = 0; k < S - 2; k++) issue(k);
  float acc[N / 2];
#pragma unroll
  for (int i = 0; i < N / 2; i++) acc[i] = 0.f;
  for (int k = 0; k < n; k++) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(S - 3));
    // Stage k landed for every thread, and both warpgroups' products of group k − 2 have completed (each
    // waited for its own before), so weight tile k % 2 and stage (k − 2) % S are free.
    __syncthreads();
    issue(k + S - 2);
    const unsigned st = xs0 + (unsigned)((k % S) * ST), wt = ws0 + (unsigned)((k & 1) * WT);
#pragma unroll
    for (int u = 0; u < 4; u++) {
      // Rounded as bitsandbytes does it (absmax dequantized to fp32 first, then the offset added): no FMA.
      const float sc = __fadd_rn(__fmul_rn(map[(wc[u] >> (8 * (k & 3))) & 255u], a2c[u]), offset);
      unsigned w, r[4];
      asm volatile("ld.shared.u32 %0, [%1];" : "=r"(w) : "r"(st + cst[u]));
      nf4_word4(w, sc, tbl, r);
      asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};" ::"r"(wt + wst[u]), "r"(r[0]), "r"(r[1]), "r"(r[2]),
                   "r"(r[3])
                   : "memory");
    }
    if ((k & 3) == 3) {  // the next four groups' absmax words
#pragma unroll
      for (int u = 0; u < 4; u++) {
        wc[u] = wn[u], a2c[u] = a2n[u];
        word(u, (k >> 2) + 2, wn[u], a2n[u]);
      }
    }
    // This thread's stores and copies, visible to the tensor cores' reads (the async proxy), then everyone's.
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
    for (int s = 0; s < 4; s++) wg_mma<N>(acc, wg_desc(wt + (unsigned)(wg * 8192 + 256 * s)), wg_desc(st + 256u * s));
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");  // this warpgroup's group k − 1
  }
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
  asm volatile("cp.async.wait_group 0;\n" ::);
  __syncthreads();  // every stage read: its memory holds the output tile next
  pdl_launch_dependents();
  // Accumulator i of lane (g, t) of warp v of warpgroup w is output 64w + 16v + g + 8 · ((i / 2) % 2), row
  // 8 · (i / 4) + 2t + i % 2. Through a tile [N][TS] fp32 in shared memory (TS = 132: the lanes of a store hit
  // 32 distinct banks), then out a row at a time, consecutive threads on consecutive outputs.
  constexpr int TS = 132;
  static_assert(N * TS * 4 <= S * ST, "the output tile exceeds the stages");
  float* tile = reinterpret_cast<float*>(nf4_wg_smem);
#pragma unroll
  for (int i = 0; i < N / 2; i++)
    tile[(8 * (i >> 2) + 2 * t + (i & 1)) * TS + 16 * warp + g + 8 * ((i >> 1) & 1)] = acc[i];
  __syncthreads();
  for (int e = tid; e < rows * 128; e += blockDim.x) {
    const int r = e >> 7, o = ob + (e & 127);
    if (o >= out) continue;
    const float v = tile[r * TS + (e & 127)];
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
// NF4_WGMMA(N, S): rows ≤ N, S stages (gpu/ops nf4WGMMALaunch repeats S), 2 blocks per SM.
#define NF4_WGMMA(N, S)                                                                                      \
  extern "C" __global__ void __launch_bounds__(256, 2) nf4_wgmma_n##N(NF4_GEMV_PARAMS, float* __restrict__ part, \
                                                                       long long gps) {                      \
    nf4_wgmma<N, S>(y, x, codes, absmax_q, code2, absmax2, offset, beta, rows, out, in, ldx, ldy, bs2_shift,  \
                    y_f32, bias, lora_h, lora_b, lora_scale, ldh, rank, part, gps);                          \
  }
NF4_WGMMA(48, 5)
NF4_WGMMA(64, 5)
NF4_WGMMA(96, 4)
