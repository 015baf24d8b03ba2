//go:build t2mcuda

package cuda

import "fmt"

// DType is the element type of a device matrix.
type DType int

const (
	BF16T DType = iota // bfloat16
	F32T               // float32
)

// Size is the element size in bytes.
func (t DType) Size() int64 {
	if t == F32T {
		return 4
	}
	return 2
}

func (t DType) String() string {
	if t == F32T {
		return "f32"
	}
	return "bf16"
}

func (t DType) cuda() int {
	if t == F32T {
		return dtF32
	}
	return dtBF16
}

// Mat is a row-major matrix in device memory: Rows×Cols elements of DType at Buf, LD elements between
// row starts (0 means Cols).
type Mat struct {
	Buf        Buffer
	Rows, Cols int
	LD         int
	DType      DType
}

// M returns a dense row-major matrix view of b.
func M(b Buffer, rows, cols int, t DType) Mat { return Mat{Buf: b, Rows: rows, Cols: cols, DType: t} }

func (m Mat) ld() int { return m.Stride() }

// Stride is the number of elements between row starts (LD, or Cols when LD is 0).
func (m Mat) Stride() int {
	if m.LD == 0 {
		return m.Cols
	}
	return m.LD
}

// Check verifies that m's elements fit in its buffer (name is for the error).
func (m Mat) Check(name string) error { return m.check(name) }

// check verifies that m's elements fit in its buffer.
func (m Mat) check(name string) error {
	if m.Rows <= 0 || m.Cols <= 0 || m.ld() < m.Cols {
		return fmt.Errorf("%s: shape [%d, %d] with row stride %d", name, m.Rows, m.Cols, m.ld())
	}
	need := (int64(m.Rows-1)*int64(m.ld()) + int64(m.Cols)) * m.DType.Size()
	if need > m.Buf.Bytes {
		return fmt.Errorf("%s: [%d, %d] %s needs %d bytes, buffer has %d", name, m.Rows, m.Cols, m.DType, need,
			m.Buf.Bytes)
	}
	return nil
}

// gemmDims are the shapes of op(A), [M, K], and op(B), [KB, N] (K = KB when they can be multiplied).
func gemmDims(transA, transB bool, A, B Mat) (M, K, KB, N int) {
	M, K = A.Rows, A.Cols
	if transA {
		M, K = K, M
	}
	KB, N = B.Rows, B.Cols
	if transB {
		KB, N = N, KB
	}
	return M, K, KB, N
}

// Gemm computes C = alpha·op(A)·op(B) + beta·C in row-major terms, op(X) = Xᵀ when its flag is set:
// op(A) is [M, K], op(B) is [K, N], C is [M, N]. A and B are both bf16 (C bf16 or f32) or both f32
// (C f32); products accumulate in fp32. With beta = 0, C is only written.
func (b *BLAS) Gemm(transA, transB bool, alpha float32, A, B Mat, beta float32, C Mat) error {
	k, err := gemmArgs(transA, transB, A, B, C)
	if err != nil {
		return err
	}
	return b.gemmRaw(transA, transB, k.m, k.n, k.k, alpha, A.Buf, k.aType, k.lda, B.Buf, k.bType, k.ldb, beta,
		C.Buf, k.cType, k.ldc)
}

// gemmArgs checks Gemm's operands and gives the product's shape, strides and types.
func gemmArgs(transA, transB bool, A, B, C Mat) (gemmKey, error) {
	for _, e := range []error{A.check("gemm A"), B.check("gemm B"), C.check("gemm C")} {
		if e != nil {
			return gemmKey{}, fmt.Errorf("gpu: %w", e)
		}
	}
	M, K, KB, N := gemmDims(transA, transB, A, B)
	if K != KB || C.Rows != M || C.Cols != N {
		return gemmKey{}, fmt.Errorf("gpu: gemm shapes: op(A) [%d, %d] · op(B) [%d, %d] into C [%d, %d]", M, K, KB, N,
			C.Rows, C.Cols)
	}
	if A.DType != B.DType || (A.DType == F32T && C.DType != F32T) {
		return gemmKey{}, fmt.Errorf("gpu: gemm types %s·%s into %s (want bf16·bf16 into bf16 or f32, or f32·f32 into f32)",
			A.DType, B.DType, C.DType)
	}
	return gemmKey{transA, transB, M, N, K, A.ld(), B.ld(), C.ld(), A.DType.cuda(), B.DType.cuda(), C.DType.cuda()}, nil
}

// GemmBatched is Gemm over batch matrices, the i-th at element offsets i·strideA, i·strideB, i·strideC;
// A, B and C describe the first matrix of each batch.
func (b *BLAS) GemmBatched(transA, transB bool, alpha float32, A Mat, strideA int64, B Mat, strideB int64,
	beta float32, C Mat, strideC int64, batch int) error {
	if batch <= 0 {
		return fmt.Errorf("gpu: batched gemm of %d matrices", batch)
	}
	last := func(m Mat, stride int64) Mat {
		if stride*int64(batch-1) == 0 {
			return m
		}
		m.Buf = m.Buf.Slice(stride*int64(batch-1)*m.DType.Size(), m.Buf.Bytes-stride*int64(batch-1)*m.DType.Size())
		return m
	}
	for _, e := range []error{last(A, strideA).check("gemm A"), last(B, strideB).check("gemm B"),
		last(C, strideC).check("gemm C")} {
		if e != nil {
			return fmt.Errorf("gpu: batched %w", e)
		}
	}
	M, K, KB, N := gemmDims(transA, transB, A, B)
	if K != KB || C.Rows != M || C.Cols != N || A.DType != B.DType {
		return fmt.Errorf("gpu: batched gemm: op(A) [%d, %d] %s · op(B) [%d, %d] %s into C [%d, %d]", M, K,
			A.DType, KB, N, B.DType, C.Rows, C.Cols)
	}
	return b.gemmBatchedRaw(transA, transB, M, N, K, alpha, A.Buf, A.DType.cuda(), A.ld(), strideA, B.Buf,
		B.DType.cuda(), B.ld(), strideB, beta, C.Buf, C.DType.cuda(), C.ld(), strideC, batch)
}

// Linear computes y = x·Wᵀ (+ beta·y): x [M, K], W [N, K] (PyTorch's Linear weight), y [M, N].
func (b *BLAS) Linear(x, W Mat, beta float32, y Mat) error {
	return b.Gemm(false, true, 1, x, W, beta, y)
}

// LinearGradInput computes dx = alpha·dy·W (+ beta·dx): dy [M, N], W [N, K], dx [M, K].
func (b *BLAS) LinearGradInput(dy, W Mat, alpha, beta float32, dx Mat) error {
	return b.Gemm(false, false, alpha, dy, W, beta, dx)
}

// LinearGradWeight computes dW = alpha·dyᵀ·x (+ beta·dW): dy [M, N], x [M, K], dW [N, K]; for LoRA's
// dA = dhᵀ·x and dB = s·dyᵀ·h.
func (b *BLAS) LinearGradWeight(dy, x Mat, alpha, beta float32, dW Mat) error {
	return b.Gemm(true, false, alpha, dy, x, beta, dW)
}
