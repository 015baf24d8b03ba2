//go:build !unix

package safetensors

import (
	"io"
	"os"
)

// mapFile reads the whole file where mmap is not available.
func mapFile(f *os.File, size int64) ([]byte, func() error, error) {
	data := make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, nil, err
	}
	return data, func() error { return nil }, nil
}

// dropPages does nothing where the file was read into memory rather than mapped.
func dropPages(data []byte, lo, hi int64) error { return nil }
