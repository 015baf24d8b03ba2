// attention.cuh: the tile helpers shared by attention.cu (forward) and attention_bwd.cu (backward), and
// lora_grad.cu: mma.sync m16n8k16 bf16, ldmatrix, cp.async, and the attention tile sizes. See attention.cu for
// the layouts.
#pragma once
#include <cuda_bf16.h>
#include <math_constants.h>

#define ATT_WARPS 4
#define ATT_THREADS (ATT_WARPS * 32)
#define ATT_BM 64  // forward: queries per block (16 per warp)
#define ATT_BN 64  // keys per tile (forward) and per block (backward, 16 per warp)
#define ATT_BQ 32  // backward: queries per inner tile
#define ATT_LOG2E 1.4426950408889634f

__device__ __forceinline__ void att_mma(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// att_ldsm_t loads four transposed 8x8 bf16 matrices from shared memory; lane l supplies the address of row
// (l & 7) of matrix (l >> 3).
__device__ __forceinline__ void att_ldsm_t(unsigned* r, const __nv_bfloat16* p) {
    const unsigned addr = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

__device__ __forceinline__ unsigned att_pack(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&h);
}

__device__ __forceinline__ unsigned att_ld32(const __nv_bfloat16* p) { return *reinterpret_cast<const unsigned*>(p); }

// att_ldsm loads four 8x8 bf16 matrices from shared memory (not transposed); lane l supplies the address of
// row (l & 7) of matrix (l >> 3). Thread l receives row l/4, columns 2(l%4), 2(l%4)+1 of each matrix.
__device__ __forceinline__ void att_ldsm(unsigned* r, const __nv_bfloat16* p) {
    const unsigned addr = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// att_cp16 copies 16 bytes from global to shared memory asynchronously (cp.async), or writes 16 zero bytes
// when valid is false (src-size 0: nothing is read).
__device__ __forceinline__ void att_cp16(void* s, const void* g, bool valid) {
    const unsigned addr = (unsigned)__cvta_generic_to_shared(s);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(g), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void att_cp_commit() { asm volatile("cp.async.commit_group;\n"); }
template <int N>
__device__ __forceinline__ void att_cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// att_load_tile copies rows [r0, r0+ROWS) of a [T, stride] bf16 matrix (columns [0, D)) into smem [ROWS][D+8]
// with cp.async, zero-filling rows at or past T. The caller commits and waits.
template <int D, int ROWS>
__device__ __forceinline__ void att_load_tile(__nv_bfloat16* s, const __nv_bfloat16* g, long long stride, int r0,
                                              int T) {
    constexpr int VPR = D / 8;  // 16-byte vectors per row
    for (int i = threadIdx.x; i < ROWS * VPR; i += ATT_THREADS) {
        const int r = i / VPR, c = (i % VPR) * 8;
        const bool ok = r0 + r < T;
        att_cp16(s + r * (D + 8) + c, g + (ok ? (long long)(r0 + r) * stride + c : 0), ok);
    }
}

// att_seg is the segment of position j of a sequence (attention.cu's kmask): its kmask value (0: padding;
// equal non-zero values: one of the sequences packed into the row), 1 without a mask, 0 past T.
__device__ __forceinline__ int att_seg(int j, int T, const int* km) { return j < T ? (km == nullptr ? 1 : km[j]) : 0; }

// att_vis says whether key c of segment ks is visible to query r of segment qs: causal, not padding, and in
// the query's segment (a padding query, qs = 0, sees every key that is not padding, as HF's mask has it).
__device__ __forceinline__ bool att_vis(int c, int ks, int r, int qs) { return ks != 0 && c <= r && (qs == 0 || ks == qs); }

// att_seg_range gives the smallest and largest segment of positions [p0, p0 + n) below T (n ≤ blockDim.x;
// lo 0 when one is padding; lo > hi when none is below T), by the whole block through red (2 shared ints).
// Every thread of the block must call it; it ends with a barrier.
__device__ __forceinline__ void att_seg_range(int p0, int n, int T, const int* km, int* red, int& lo, int& hi) {
    if (threadIdx.x == 0) red[0] = 0x7fffffff, red[1] = -1;
    __syncthreads();
    if (threadIdx.x < n && p0 + (int)threadIdx.x < T) {
        const int s = att_seg(p0 + threadIdx.x, T, km);
        atomicMin(&red[0], s);
        atomicMax(&red[1], s);
    }
    __syncthreads();
    lo = red[0], hi = red[1];
    __syncthreads();
}

// att_first_tile is the first tile of ATT_BN keys that can hold a key visible to queries at or before last
// whose segments are all in [lo, hi], lo ≥ 1: every key before the first position of a segment in that range
// is invisible to them (any kmask; packed rows are the case that skips work). 0 with a padding query (lo = 0)
// or no mask. red: one shared int; every thread of the block must call it; it ends with a barrier.
__device__ __forceinline__ int att_first_tile(int last, int T, const int* km, int lo, int hi, int* red) {
    if (lo == 0 || km == nullptr) return 0;
    if (threadIdx.x == 0) red[0] = 0x7fffffff;
    __syncthreads();
    for (int j = threadIdx.x; j <= last && j < T; j += blockDim.x) {
        if (km[j] >= lo && km[j] <= hi) {
            atomicMin(&red[0], j);
            break;  // this thread's later positions are later
        }
    }
    __syncthreads();
    const int first = red[0];
    __syncthreads();
    return first == 0x7fffffff ? 0 : first / ATT_BN;
}

