//go:build t2mcuda

package gpu

import (
	"fmt"
	"os"
	"strconv"

	"github.com/t2m/t2m/gpu/cuda"
)

func init() { register(cudaBackend{}, NewTrainBackend) }

// cudaBackend is the Backend of the t2mcuda build.
type cudaBackend struct{}

// ordinal is the GPU this process uses: LOCAL_RANK's in a data-parallel run (one process per GPU, the
// variable torchrun and t2m --gpus set), else 0.
func ordinal() int {
	if n, err := strconv.Atoi(os.Getenv("LOCAL_RANK")); err == nil && n >= 0 {
		return n
	}
	return 0
}

// Describe opens this process's GPU (ordinal) and names it.
func (cudaBackend) Describe() (string, error) {
	d, err := cuda.Open(ordinal())
	if err != nil {
		return "", err
	}
	defer d.Close()
	return fmt.Sprintf("%s, %d MiB, compute capability %d.%d", d.Name, d.TotalMB, d.CC[0], d.CC[1]), nil
}
