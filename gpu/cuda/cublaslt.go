//go:build t2mcuda

package cuda

// #include "cgo_cuda.h"
// #include "cgo_cublaslt.h"
// #include <stdlib.h>
import "C"

import (
	"fmt"
	"strings"
	"unsafe"
)

// cuBLASLt library names tried in order by dlopen, as for cuBLAS.
var cublasLtNames = []string{"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so"}

// ltAlgo is a cublasLtMatmulAlgo_t: an algorithm with its configuration, as the heuristic returned it.
type ltAlgo [C.T2M_LT_ALGO_BYTES]byte

// ltInfo is an algorithm's configuration as cuBLASLt reports it (-1: not reported).
type ltInfo struct {
	id, tile, splitK, reduction, stages, cluster int
}

func (i ltInfo) String() string {
	return fmt.Sprintf("algo %d tile %d stages %d cluster %d", i.id, i.tile, i.stages, i.cluster)
}

// exact reports whether the algorithm computes each output in one pass over K (no split-K, no reduction
// scheme): measured on an H200 (scripts/bench/NOTES.md, sixteenth session), every such algorithm cuBLASLt
// offered for the 7B products gave cublasGemmEx's bits, and every split-K one did not. Tune checks the bits
// again on its own operands before it uses one.
func (i ltInfo) exact() bool { return (i.splitK == 0 || i.splitK == 1) && i.reduction == 0 }

// ltPlan is a product's descriptors and the algorithm Gemm runs it with.
type ltPlan struct {
	op   C.t2m_lt_op
	algo ltAlgo
}

// gemmKey is what a tuned plan applies to: gemmRaw's row-major arguments but alpha, beta and the pointers.
type gemmKey struct {
	transA, transB      bool
	m, n, k             int
	lda, ldb, ldc       int
	aType, bType, cType int
}

// ltHandle opens cuBLASLt and creates its handle the first time.
func (b *BLAS) ltHandle() (unsafe.Pointer, error) {
	if b.lt != nil {
		return b.lt, nil
	}
	var tried []string
	for _, name := range cublasLtNames {
		cname := C.CString(name)
		r := C.t2m_lt_open(cname)
		C.free(unsafe.Pointer(cname))
		if r == 0 {
			if r := C.t2m_lt_create(&b.lt); r != 0 {
				return nil, fmt.Errorf("gpu: cublasLtCreate with %s: %s", name, cublasStatus(int(r)))
			}
			return b.lt, nil
		}
		msg := C.GoString(C.t2m_dlerror())
		if r == -2 {
			msg = "a cuBLASLt entry point is missing"
		}
		tried = append(tried, name+": "+msg)
	}
	return nil, fmt.Errorf("gpu: cuBLASLt not found (%s)", strings.Join(tried, "; "))
}

// newLtOp describes gemmRaw's product for cuBLASLt, with gemmRaw's swap of A and B (cuBLAS is column-major).
func newLtOp(k gemmKey) (C.t2m_lt_op, error) {
	var op C.t2m_lt_op
	r := C.t2m_lt_op_create(&op, boolOp(k.transB), boolOp(k.transA), C.int(k.n), C.int(k.m), C.int(k.k),
		C.int(k.bType), C.int(k.ldb), C.int(k.aType), C.int(k.lda), C.int(k.cType), C.int(k.ldc))
	if r != 0 {
		return op, fmt.Errorf("gpu: cuBLASLt descriptors for M=%d N=%d K=%d: %s", k.m, k.n, k.k, cublasStatus(int(r)))
	}
	return op, nil
}

// ltCandidates are cuBLASLt's heuristic algorithms for op within the workspace, in its order, with their
// configurations.
func (b *BLAS) ltCandidates(op *C.t2m_lt_op, max int) ([]ltAlgo, []ltInfo, error) {
	algos := make([]ltAlgo, max)
	waves := make([]C.float, max)
	var n C.int
	if r := C.t2m_lt_heuristics(b.lt, op, C.size_t(b.ws.Bytes), C.int(max), unsafe.Pointer(&algos[0]), &waves[0], &n); r != 0 {
		return nil, nil, fmt.Errorf("gpu: cublasLtMatmulAlgoGetHeuristic: %s", cublasStatus(int(r)))
	}
	algos = algos[:n]
	infos := make([]ltInfo, n)
	for i := range algos {
		var id, tile, splitK, red, stages, cluster C.int
		C.t2m_lt_algo_info(unsafe.Pointer(&algos[i]), &id, &tile, &splitK, &red, &stages, &cluster)
		infos[i] = ltInfo{int(id), int(tile), int(splitK), int(red), int(stages), int(cluster)}
	}
	return algos, infos, nil
}

// ltMatmul runs C = alpha·op(A)·op(B) + beta·C with plan p (the row-major operands of gemmRaw).
func (b *BLAS) ltMatmul(p *ltPlan, alpha float32, A, B Buffer, beta float32, Cb Buffer) error {
	r := C.t2m_lt_matmul(b.lt, &p.op, unsafe.Pointer(&p.algo), C.float(alpha), C.CUdeviceptr(B.Ptr),
		C.CUdeviceptr(A.Ptr), C.float(beta), C.CUdeviceptr(Cb.Ptr), C.CUdeviceptr(b.ws.Ptr), C.size_t(b.ws.Bytes),
		rawStream(b.d.Stream))
	if r != 0 {
		return fmt.Errorf("gpu: cublasLtMatmul: %s", cublasStatus(int(r)))
	}
	return nil
}

// closeLt frees the tuned plans and the cuBLASLt handle.
func (b *BLAS) closeLt() {
	for k, p := range b.tuned {
		if p != nil {
			C.t2m_lt_op_destroy(&p.op)
		}
		delete(b.tuned, k)
	}
	if b.lt != nil {
		C.t2m_lt_destroy(b.lt)
		b.lt = nil
	}
}
