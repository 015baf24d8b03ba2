// Scatter of rows: the backward of the head rows' gather (model.GatherRowsOp, whose forward runs
// embedding_fwd_bf16 with the activation as its table and −1 ids giving zero rows). CPU twin: model.ScatterRows.

// scatter_rows_bf16: dy [P, C] bf16, idx [P] int32 -> dx [N, C] bf16: dx[idx[p], :] = dy[p, :] where
// 0 <= idx[p] < N (each row of dx named once at most; −1 names none); the launcher zeroed dx before, so
// the rows no index names stay zero. C % 8 == 0. grid (P), block 128.
extern "C" __global__ void __launch_bounds__(128) scatter_rows_bf16(
    uint4* __restrict__ dx, const uint4* __restrict__ dy, const int* __restrict__ idx, long long N, long long C) {
    const long long p = blockIdx.x, c8 = C / 8;
    const long long n = idx[p];
    if (n < 0 || n >= N) return;
    uint4* dr = dx + n * c8;
    const uint4* sr = dy + p * c8;
    for (long long i = threadIdx.x; i < c8; i += blockDim.x) dr[i] = sr[i];
}
