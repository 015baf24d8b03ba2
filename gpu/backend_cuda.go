//go:build t2mcuda

package gpu

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
)

func init() { register(cudaBackend{}, NewTrainBackend) }

// cudaBackend is the Backend of the t2mcuda build.
type cudaBackend struct{}

// Describe opens GPU 0 and names it.
func (cudaBackend) Describe() (string, error) {
	d, err := cuda.Open(0)
	if err != nil {
		return "", err
	}
	defer d.Close()
	return fmt.Sprintf("%s, %d MiB, compute capability %d.%d", d.Name, d.TotalMB, d.CC[0], d.CC[1]), nil
}
