//go:build unix

package safetensors

import (
	"fmt"
	"os"
	"syscall"
)

// mapFile maps size bytes of f read-only. The mapping outlives f's descriptor.
func mapFile(f *os.File, size int64) ([]byte, func() error, error) {
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return data, func() error { return syscall.Munmap(data) }, nil
}

// dropPages advises the kernel that the whole pages of data[lo:hi] are not needed (MADV_DONTNEED on a
// read-only shared file mapping: they leave the resident set and are read again from the file if touched).
func dropPages(data []byte, lo, hi int64) error {
	page := int64(os.Getpagesize())
	lo, hi = (lo+page-1)/page*page, hi/page*page
	if hi <= lo {
		return nil
	}
	if err := syscall.Madvise(data[lo:hi], syscall.MADV_DONTNEED); err != nil {
		return fmt.Errorf("safetensors: madvise: %w", err)
	}
	return nil
}
