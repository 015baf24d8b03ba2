package rendezvous

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Env is this process's place in a run of several processes, one per GPU.
type Env struct {
	Rank      int    // this process's index in [0, World)
	World     int    // the number of processes
	LocalRank int    // the index of this process among those on its machine (picks its GPU)
	Addr      string // host:port where rank 0 listens (MASTER_ADDR:MASTER_PORT)
}

// FromEnv reads the launcher's variables through getenv (os.Getenv): RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR and MASTER_PORT as torchrun sets them, or, when RANK and WORLD_SIZE are both unset, SLURM's
// SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID (MASTER_ADDR and MASTER_PORT are then still required).
// LOCAL_RANK (SLURM_LOCALID) defaults to the rank, right for one machine.
//
// ok is false, with no error, for a single process: no world size set, or a world size of 1 (nothing to
// exchange). A malformed or inconsistent variable is an error naming it.
func FromEnv(getenv func(string) string) (e Env, ok bool, err error) {
	rankVar, worldVar, localVar := "RANK", "WORLD_SIZE", "LOCAL_RANK"
	if strings.TrimSpace(getenv("RANK")) == "" && strings.TrimSpace(getenv("WORLD_SIZE")) == "" {
		rankVar, worldVar, localVar = "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"
	}
	worldStr := strings.TrimSpace(getenv(worldVar))
	rankStr := strings.TrimSpace(getenv(rankVar))
	if worldStr == "" {
		if rankStr != "" {
			return Env{}, false, fmt.Errorf("rendezvous: %s=%s is set but %s is not; a launcher sets both "+
				"(unset %s for a single process)", rankVar, rankStr, worldVar, rankVar)
		}
		return Env{}, false, nil
	}
	if e.World, err = atoi(worldVar, worldStr); err != nil {
		return Env{}, false, err
	}
	if e.World < 1 {
		return Env{}, false, fmt.Errorf("rendezvous: %s=%d: the world size must be at least 1", worldVar, e.World)
	}
	if rankStr == "" {
		if e.World == 1 {
			return Env{World: 1}, false, nil
		}
		return Env{}, false, fmt.Errorf("rendezvous: %s=%d is set but %s is not; every process of the run "+
			"needs its rank", worldVar, e.World, rankVar)
	}
	if e.Rank, err = atoi(rankVar, rankStr); err != nil {
		return Env{}, false, err
	}
	if e.Rank < 0 || e.Rank >= e.World {
		return Env{}, false, fmt.Errorf("rendezvous: %s=%d is out of range: ranks are 0..%d (%s=%d)",
			rankVar, e.Rank, e.World-1, worldVar, e.World)
	}
	e.LocalRank = e.Rank
	if s := strings.TrimSpace(getenv(localVar)); s != "" {
		if e.LocalRank, err = atoi(localVar, s); err != nil {
			return Env{}, false, err
		}
		if e.LocalRank < 0 || e.LocalRank >= e.World {
			return Env{}, false, fmt.Errorf("rendezvous: %s=%d is out of range: local ranks are 0..%d (%s=%d)",
				localVar, e.LocalRank, e.World-1, worldVar, e.World)
		}
	}
	if e.World == 1 {
		return e, false, nil
	}
	host := strings.TrimSpace(getenv("MASTER_ADDR"))
	portStr := strings.TrimSpace(getenv("MASTER_PORT"))
	if host == "" || portStr == "" {
		missing := "MASTER_ADDR"
		if host != "" {
			missing = "MASTER_PORT"
		} else if portStr == "" {
			missing = "MASTER_ADDR and MASTER_PORT"
		}
		return Env{}, false, fmt.Errorf("rendezvous: %s not set: a run of %d processes (%s=%d) needs "+
			"MASTER_ADDR and MASTER_PORT, the host and a free TCP port of rank 0", missing, e.World, worldVar, e.World)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return Env{}, false, fmt.Errorf("rendezvous: MASTER_PORT=%s is not a TCP port (1..65535)", portStr)
	}
	e.Addr = net.JoinHostPort(host, strconv.Itoa(port))
	return e, true, nil
}

// atoi parses the value s of the variable name as a decimal integer.
func atoi(name, s string) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("rendezvous: %s=%q is not an integer", name, s)
	}
	return v, nil
}
