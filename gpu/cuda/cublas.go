//go:build t2mcuda

package cuda

// #include "cgo_cuda.h"
// #include <stdlib.h>
import "C"

import (
	"fmt"
	"strings"
	"unsafe"
)

// cuBLAS library names tried in order by dlopen; the loader's default search finds the CUDA install's.
var cublasNames = []string{"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"}

// cudaDataType values (library_types.h).
const (
	dtF32  = 0
	dtBF16 = 14
)

// cublasWorkspace is the workspace given to cuBLAS from our own memory, so it allocates nothing mid-step
// (NVIDIA recommends 32 MiB on Hopper).
const cublasWorkspace = 32 << 20

// BLAS is a cuBLAS handle bound to a Device's stream. cuBLAS is loaded at run time, so one binary works
// with any CUDA 11.8+ install and none is needed to build.
type BLAS struct {
	d       *Device
	h       unsafe.Pointer
	Lib     string // the library that dlopen found
	Version int
	ws      Buffer

	// lt is the cuBLASLt handle (nil until Tune opens it); tuned holds, per product shape Tune has timed,
	// the cuBLASLt plan Gemm runs it with, or nil where cublasGemmEx stays (gemm_tune.go). Tune fills it
	// before the Runs that use it; Gemm only reads it.
	lt      unsafe.Pointer
	tuned   map[gemmKey]*ltPlan
	tunings map[gemmKey]GemmTuning
}

// BLAS returns d's cuBLAS handle, loading the library and creating the handle the first time.
func (d *Device) BLAS() (*BLAS, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.blas != nil {
		return d.blas, nil
	}
	var tried []string
	lib := ""
	for _, name := range cublasNames {
		cname := C.CString(name)
		r := C.t2m_cublas_open(cname)
		C.free(unsafe.Pointer(cname))
		if r == 0 {
			lib = name
			break
		}
		msg := C.GoString(C.t2m_dlerror())
		if r == -2 {
			msg = "a cuBLAS entry point is missing"
		}
		tried = append(tried, name+": "+msg)
	}
	if lib == "" {
		return nil, fmt.Errorf("gpu: cuBLAS not found (%s); install the CUDA toolkit's libcublas or set "+
			"LD_LIBRARY_PATH to its folder", strings.Join(tried, "; "))
	}
	b := &BLAS{d: d, Lib: lib}
	if r := C.t2m_cublas_create(&b.h); r != 0 {
		return nil, fmt.Errorf("gpu: cublasCreate with %s: status %d", lib, int(r))
	}
	var v C.int
	if r := C.t2m_cublas_version(b.h, &v); r != 0 {
		return nil, fmt.Errorf("gpu: cublasGetVersion: status %d", int(r))
	}
	b.Version = int(v)
	if r := C.t2m_cublas_set_stream(b.h, rawStream(d.Stream)); r != 0 {
		return nil, fmt.Errorf("gpu: cublasSetStream: status %d", int(r))
	}
	if C.t2m_cublas_has_workspace() != 0 {
		d.mu.Unlock()
		ws, err := d.Alloc(cublasWorkspace)
		d.mu.Lock()
		if err != nil {
			return nil, fmt.Errorf("gpu: cuBLAS workspace: %w", err)
		}
		if r := C.t2m_cublas_set_workspace(b.h, C.CUdeviceptr(ws.Ptr), C.size_t(ws.Bytes)); r != 0 {
			return nil, fmt.Errorf("gpu: cublasSetWorkspace: status %d", int(r))
		}
		b.ws = ws
	}
	d.blas = b
	return b, nil
}

func (b *BLAS) close() {
	b.closeLt()
	if b.h != nil {
		C.t2m_cublas_destroy(b.h)
		b.h = nil
	}
}

// cublasStatus names a cuBLAS status code (cublas_api.h).
func cublasStatus(r int) string {
	switch r {
	case 1:
		return "CUBLAS_STATUS_NOT_INITIALIZED"
	case 3:
		return "CUBLAS_STATUS_ALLOC_FAILED"
	case 7:
		return "CUBLAS_STATUS_INVALID_VALUE"
	case 8:
		return "CUBLAS_STATUS_ARCH_MISMATCH"
	case 11:
		return "CUBLAS_STATUS_MAPPING_ERROR"
	case 13:
		return "CUBLAS_STATUS_EXECUTION_FAILED"
	case 14:
		return "CUBLAS_STATUS_INTERNAL_ERROR"
	case 15:
		return "CUBLAS_STATUS_NOT_SUPPORTED"
	}
	return fmt.Sprintf("cuBLAS status %d", r)
}

func boolOp(t bool) C.int {
	if t {
		return 1 // CUBLAS_OP_T
	}
	return 0 // CUBLAS_OP_N
}

// gemmRaw computes, in row-major terms, C[M,N] = alpha·op(A)·op(B) + beta·C with op(A) [M,K], op(B) [K,N],
// leading dimensions lda, ldb, ldc (row strides in elements). cuBLAS is column-major, so it is asked for
// Cᵀ = op(B)ᵀ·op(A)ᵀ: the row-major transposition flags pass through unchanged, with A and B swapped.
func (b *BLAS) gemmRaw(transA, transB bool, M, N, K int, alpha float32, A Buffer, aType, lda int,
	B Buffer, bType, ldb int, beta float32, Cb Buffer, cType, ldc int) error {
	if len(b.tuned) > 0 {
		k := gemmKey{transA, transB, M, N, K, lda, ldb, ldc, aType, bType, cType}
		if p := b.tuned[k]; p != nil {
			return b.ltMatmul(p, alpha, A, B, beta, Cb)
		}
	}
	return b.gemmEx(transA, transB, M, N, K, alpha, A, aType, lda, B, bType, ldb, beta, Cb, cType, ldc)
}

// gemmEx is gemmRaw by cublasGemmEx, cuBLAS's own choice of algorithm.
func (b *BLAS) gemmEx(transA, transB bool, M, N, K int, alpha float32, A Buffer, aType, lda int,
	B Buffer, bType, ldb int, beta float32, Cb Buffer, cType, ldc int) error {
	r := C.t2m_cublas_gemm(b.h, boolOp(transB), boolOp(transA), C.int(N), C.int(M), C.int(K), C.float(alpha),
		C.CUdeviceptr(B.Ptr), C.int(bType), C.int(ldb), C.CUdeviceptr(A.Ptr), C.int(aType), C.int(lda),
		C.float(beta), C.CUdeviceptr(Cb.Ptr), C.int(cType), C.int(ldc))
	if r != 0 {
		return fmt.Errorf("gpu: cublasGemmEx M=%d N=%d K=%d transA=%v transB=%v: %s", M, N, K, transA, transB,
			cublasStatus(int(r)))
	}
	return nil
}

// gemmBatchedRaw is gemmRaw over batch matrices at element strides sA, sB, sC.
func (b *BLAS) gemmBatchedRaw(transA, transB bool, M, N, K int, alpha float32, A Buffer, aType, lda int,
	sA int64, B Buffer, bType, ldb int, sB int64, beta float32, Cb Buffer, cType, ldc int, sC int64,
	batch int) error {
	r := C.t2m_cublas_gemm_batched(b.h, boolOp(transB), boolOp(transA), C.int(N), C.int(M), C.int(K),
		C.float(alpha), C.CUdeviceptr(B.Ptr), C.int(bType), C.int(ldb), C.longlong(sB),
		C.CUdeviceptr(A.Ptr), C.int(aType), C.int(lda), C.longlong(sA), C.float(beta),
		C.CUdeviceptr(Cb.Ptr), C.int(cType), C.int(ldc), C.longlong(sC), C.int(batch))
	if r != 0 {
		return fmt.Errorf("gpu: cublasGemmStridedBatchedEx M=%d N=%d K=%d batch=%d: %s", M, N, K, batch,
			cublasStatus(int(r)))
	}
	return nil
}
