//go:build t2mcuda

package cuda

// #cgo LDFLAGS: -lcuda -ldl
// #cgo CFLAGS: -I/usr/include -I/usr/local/cuda/include
// #include "cgo_cuda.h"
// #include <stdlib.h>
import "C"

import (
	"fmt"
	"unsafe"

	"gorgonia.org/cu"
)

// initStatus returns the result of the driver's cuInit, which cgo_cuda.c intercepted so that cu's package
// init cannot exit the program.
func initStatus() error {
	if r := C.t2m_cuinit_status(); r != 0 {
		return fmt.Errorf("cuInit: %s (CUDA error %d)", cuResultName(int(r)), int(r))
	}
	return nil
}

// cuResultName names the few cuInit results a user meets; cu names the rest.
func cuResultName(r int) string {
	switch r {
	case 100:
		return "CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected"
	case 35:
		return "CUDA_ERROR_INSUFFICIENT_DRIVER: the installed NVIDIA driver is older than the CUDA driver API needs"
	case 3:
		return "CUDA_ERROR_NOT_INITIALIZED: the driver could not be loaded"
	case 999:
		return "CUDA_ERROR_UNKNOWN"
	}
	return fmt.Sprintf("CUresult %d", r)
}

// rawFunction is the CUfunction inside a cu.Function (a struct of one C pointer).
func rawFunction(f cu.Function) C.CUfunction { return *(*C.CUfunction)(unsafe.Pointer(&f)) }

// rawStream is the CUstream inside a cu.Stream (a struct of one C pointer).
func rawStream(s cu.Stream) C.CUstream { return *(*C.CUstream)(unsafe.Pointer(&s)) }

// launchRaw launches f with args, each an 8-byte slot, without allocating; with pdl, with programmatic stream
// serialization (f may start before the kernel ahead of it on s has finished: kernels/pdl.cuh).
func launchRaw(f cu.Function, grid, block Dim3, smem int, s cu.Stream, args []uint64, pdl bool) error {
	if len(args) > C.T2M_MAX_KERNEL_ARGS {
		return fmt.Errorf("%d kernel arguments, at most %d", len(args), C.T2M_MAX_KERNEL_ARGS)
	}
	var argp *C.ulonglong
	if len(args) > 0 {
		argp = (*C.ulonglong)(unsafe.Pointer(&args[0]))
	}
	gx, gy, gz, bx, by, bz := C.uint(grid.X), C.uint(grid.Y), C.uint(grid.Z), C.uint(block.X), C.uint(block.Y), C.uint(block.Z)
	if pdl {
		return cuErr(int(C.t2m_launch_pdl(rawFunction(f), gx, gy, gz, bx, by, bz, C.uint(smem), rawStream(s), argp, C.int(len(args)))))
	}
	return cuErr(int(C.t2m_launch(rawFunction(f), gx, gy, gz, bx, by, bz, C.uint(smem), rawStream(s), argp, C.int(len(args)))))
}

// setMaxDynamicSmem raises f's limit of dynamic shared memory (needed above 48 KB).
func setMaxDynamicSmem(f cu.Function, bytes int) error {
	r := C.cuFuncSetAttribute(rawFunction(f), C.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, C.int(bytes))
	return cuErr(int(r))
}

// allocHost allocates page-locked host memory (fast, asynchronous copies).
func allocHost(bytes int64) (unsafe.Pointer, error) {
	var p unsafe.Pointer
	r := C.cuMemHostAlloc(&p, C.size_t(bytes), 0)
	if err := cuErr(int(r)); err != nil {
		return nil, err
	}
	return p, nil
}

// freeHost frees memory from allocHost.
func freeHost(p unsafe.Pointer) error { return cuErr(int(C.cuMemFreeHost(p))) }

// cuErr turns a CUresult into an error carrying the driver's name and description.
func cuErr(r int) error {
	if r == 0 {
		return nil
	}
	var name, desc *C.char
	C.cuGetErrorName(C.CUresult(r), &name)
	C.cuGetErrorString(C.CUresult(r), &desc)
	if name == nil || desc == nil {
		return fmt.Errorf("CUDA error %d", r)
	}
	return fmt.Errorf("%s: %s", C.GoString(name), C.GoString(desc))
}
