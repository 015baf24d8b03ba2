package gpu

import (
	"errors"
	"io"
)

// ErrNoCUDA is what a binary built without the cuda tag answers to every GPU request.
var ErrNoCUDA = errors.New("this binary was built without CUDA; build with `make build-cuda` (CGO, -tags cuda) " +
	"and run bin/t2m-cuda on a machine with an NVIDIA GPU")

// Backend is the GPU as the rest of t2m sees it. The cuda build registers one at init; packages outside
// gpu/ use it through Get and never import gorgonia.org/cu, so the default build runs everywhere.
type Backend interface {
	// Describe opens the first GPU and returns one line about it (name, memory, driver).
	Describe() (string, error)
	// BenchTrain runs the training benchmark (see BenchConfig), printing progress to log.
	BenchTrain(cfg BenchConfig, log io.Writer) (*BenchResult, error)
}

var backend Backend

// register is called by the cuda build's init.
func register(b Backend) { backend = b }

// Get returns the registered GPU backend, or ErrNoCUDA in a build without CUDA.
func Get() (Backend, error) {
	if backend == nil {
		return nil, ErrNoCUDA
	}
	return backend, nil
}
