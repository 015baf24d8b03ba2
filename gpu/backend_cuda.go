//go:build t2mcuda

package gpu

import (
	"fmt"
	"os"
	"strconv"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/nccl"
	"github.com/t2m/t2m/internal/rendezvous"
	"github.com/t2m/t2m/train"
)

func init() {
	register(cudaBackend{}, deviceFuncs{newTrain: NewTrainBackend, newCollective: joinGroup, count: cuda.Count,
		newQuantizer: NewQuantizer})
}

// joinGroup is the registry's NewCollective: NCCL over the rendezvous at addr, waiting at most
// T2M_NCCL_TIMEOUT (nccl.Timeout) for the other ranks and for each all-reduce.
func joinGroup(rank, world, localRank int, addr string) (train.Collective, error) {
	timeout, err := nccl.Timeout()
	if err != nil {
		return nil, err
	}
	return JoinFromEnv(rendezvous.Env{Rank: rank, World: world, LocalRank: localRank, Addr: addr}, timeout)
}

// cudaBackend is the Backend of the t2mcuda build.
type cudaBackend struct{}

// ordinal is the GPU this process uses: DeviceOrdinal of LOCAL_RANK in a data-parallel run (one process per
// GPU; torchrun and t2m --gpus set it), else 0. A LOCAL_RANK beyond the GPUs present gives that GPU's
// number anyway, so that cuda.Open says it is missing.
func ordinal() int {
	lr, err := strconv.Atoi(os.Getenv("LOCAL_RANK"))
	if err != nil || lr < 0 {
		return 0
	}
	if o, err := DeviceOrdinal(lr); err == nil {
		return o
	}
	return lr
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
