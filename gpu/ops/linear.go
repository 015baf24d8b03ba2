//go:build t2mcuda

package ops

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
)

// LinearArgs are the operands of Linear, y = x·Wᵀ + bias + Scale·(xl·Aᵀ)·Bᵀ: the device form of model's
// LinearOp (CPU twin: model.LinearLoRAForward). A zero Buf means the part is absent.
type LinearArgs struct {
	X    cuda.Mat   // [N, in] bf16
	W    cuda.Mat   // [out, in] bf16: a dense weight, or an NF4 one dequantized (unused when NF4 is set)
	NF4  *NF4Weight // when set, x·Wᵀ is computed straight from the codes (NF4GEMV; N ≤ NF4GEMVMaxRows)
	Bias cuda.Mat   // [1, out] bf16
	Ones cuda.Mat   // [N, 1] bf16 ones: the bias is the K = 1 product ones·biasᵀ
	A, B cuda.Mat   // LoRA [r, in] and [out, r] bf16
	XL   cuda.Mat   // the LoRA branch's input [N, in] (x after LoRA dropout); zero: X
	H    cuda.Mat   // [N, r] bf16 scratch for xl·Aᵀ
	// HReady says H already holds xl·Aᵀ (made by the caller, e.g. by LoRAGrad reading x through the dropout).
	HReady bool
	// Scale is the LoRA scaling s (alpha/r).
	Scale float32
	Y     cuda.Mat // [N, out], bf16 or fp32 (an fp32 sum rounded once by the caller)
}

// Linear computes l.Y = x·Wᵀ + bias + s·(xl·Aᵀ)·Bᵀ, the small terms first: the bias (y = ones·biasᵀ), then the
// LoRA branch h = xl·Aᵀ and y = s·h·Bᵀ (+ y with a bias), then the base product accumulated into y by the
// big GEMM's epilogue (beta = 1). Adding the LoRA term last instead read and wrote all of y [N, out] once more
// in a skinny GEMM; now that GEMM only writes y (or, after a bias, reads it once), and y is rounded once on the
// sum of the base product and the small terms.
func Linear(d *cuda.Device, b *cuda.BLAS, l LinearArgs) error {
	beta := float32(0)
	if l.Bias.Buf.Bytes != 0 {
		if err := b.Gemm(false, false, 1, l.Ones, l.Bias, 0, l.Y); err != nil {
			return fmt.Errorf("bias: %w", err)
		}
		beta = 1
	}
	if l.A.Buf.Bytes != 0 {
		xl := l.XL
		if xl.Buf.Bytes == 0 {
			xl = l.X
		}
		if !l.HReady {
			if err := b.Linear(xl, l.A, 0, l.H); err != nil {
				return fmt.Errorf("lora_A: %w", err)
			}
		}
		if err := b.Gemm(false, true, l.Scale, l.H, l.B, beta, l.Y); err != nil {
			return fmt.Errorf("lora_B: %w", err)
		}
		beta = 1
	}
	if l.NF4 != nil {
		return NF4GEMV(d, l.X, l.Y, l.NF4, beta)
	}
	return b.Linear(l.X, l.W, beta, l.Y)
}
