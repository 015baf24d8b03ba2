//go:build t2mcuda

package cuda

// #cgo LDFLAGS: -lcuda
// #cgo CFLAGS: -I/usr/include -I/usr/local/cuda/include
// #include <cuda.h>
//
// static CUmemAllocationProp t2m_vmm_prop(int dev) {
//   CUmemAllocationProp p;
//   __builtin_memset(&p, 0, sizeof p);
//   p.type = CU_MEM_ALLOCATION_TYPE_PINNED;
//   p.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
//   p.location.id = dev;
//   return p;
// }
//
// static int t2m_vmm_supported(int dev) {
//   int v = 0;
//   if (cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, dev) != CUDA_SUCCESS) return 0;
//   return v;
// }
//
// static int t2m_vmm_granularity(int dev, size_t* g) {
//   CUmemAllocationProp p = t2m_vmm_prop(dev);
//   return cuMemGetAllocationGranularity(g, &p, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED);
// }
//
// static int t2m_vmm_reserve(CUdeviceptr* p, size_t size, size_t align) { return cuMemAddressReserve(p, size, align, 0, 0); }
// static int t2m_vmm_free(CUdeviceptr p, size_t size) { return cuMemAddressFree(p, size); }
//
// // t2m_vmm_map backs [at, at+size) with new physical memory of device dev, readable and writable by it.
// static int t2m_vmm_map(CUdeviceptr at, size_t size, int dev, unsigned long long* handle) {
//   CUmemAllocationProp p = t2m_vmm_prop(dev);
//   CUmemGenericAllocationHandle h;
//   int r = cuMemCreate(&h, size, &p, 0);
//   if (r != CUDA_SUCCESS) return r;
//   r = cuMemMap(at, size, 0, h, 0);
//   if (r != CUDA_SUCCESS) { cuMemRelease(h); return r; }
//   CUmemAccessDesc a;
//   __builtin_memset(&a, 0, sizeof a);
//   a.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
//   a.location.id = dev;
//   a.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
//   r = cuMemSetAccess(at, size, &a, 1);
//   if (r != CUDA_SUCCESS) { cuMemUnmap(at, size); cuMemRelease(h); return r; }
//   *handle = (unsigned long long)h;
//   return 0;
// }
//
// static int t2m_vmm_unmap(CUdeviceptr at, size_t size, unsigned long long handle) {
//   int r = cuMemUnmap(at, size);
//   int r2 = cuMemRelease((CUmemGenericAllocationHandle)handle);
//   return r != CUDA_SUCCESS ? r : r2;
// }
import "C"

import (
	"fmt"

	"gorgonia.org/cu"
)

// vmmChunk is one piece of physical memory mapped into an arena's reserved address range.
type vmmChunk struct {
	at, bytes int64 // offset in the range, size
	handle    C.ulonglong
}

// vmmSupported reports whether d can reserve address ranges and back them on demand (cuMemAddressReserve,
// cuMemCreate, cuMemMap: every GPU since Pascal with a CUDA 10.2+ driver on Linux).
func (d *Device) vmmSupported() bool { return C.t2m_vmm_supported(C.int(d.Ordinal)) != 0 }

// vmmGranularity is the size and alignment unit of physical chunks.
func (d *Device) vmmGranularity() (int64, error) {
	var g C.size_t
	if r := C.t2m_vmm_granularity(C.int(d.Ordinal), &g); r != 0 {
		return 0, fmt.Errorf("cuMemGetAllocationGranularity: %w", cuErr(int(r)))
	}
	return int64(g), nil
}

// vmmReserve reserves bytes of address space (no memory yet), aligned to align.
func (d *Device) vmmReserve(bytes, align int64) (Buffer, error) {
	var p C.CUdeviceptr
	if r := C.t2m_vmm_reserve(&p, C.size_t(bytes), C.size_t(align)); r != 0 {
		return Buffer{}, fmt.Errorf("cuMemAddressReserve of %.2f GiB: %w", GiB(bytes), cuErr(int(r)))
	}
	return Buffer{Ptr: cu.DevicePtr(p), Bytes: bytes}, nil
}

// vmmMap backs bytes of base at offset at with new device memory.
func (d *Device) vmmMap(base Buffer, at, bytes int64) (vmmChunk, error) {
	var h C.ulonglong
	if r := C.t2m_vmm_map(C.CUdeviceptr(base.Ptr)+C.CUdeviceptr(at), C.size_t(bytes), C.int(d.Ordinal), &h); r != 0 {
		return vmmChunk{}, cuErr(int(r))
	}
	d.mu.Lock()
	d.allocated += bytes
	d.peak = max(d.peak, d.allocated)
	d.mu.Unlock()
	return vmmChunk{at: at, bytes: bytes, handle: h}, nil
}

// vmmRelease unmaps and frees the chunks, then the address range.
func (d *Device) vmmRelease(base Buffer, chunks []vmmChunk) error {
	var first error
	for _, c := range chunks {
		if r := C.t2m_vmm_unmap(C.CUdeviceptr(base.Ptr)+C.CUdeviceptr(c.at), C.size_t(c.bytes), c.handle); r != 0 && first == nil {
			first = fmt.Errorf("gpu: unmapping %d bytes: %w", c.bytes, cuErr(int(r)))
		}
		d.mu.Lock()
		d.allocated -= c.bytes
		d.mu.Unlock()
	}
	if r := C.t2m_vmm_free(C.CUdeviceptr(base.Ptr), C.size_t(base.Bytes)); r != 0 && first == nil {
		first = fmt.Errorf("gpu: cuMemAddressFree: %w", cuErr(int(r)))
	}
	return first
}
