package pipeline

import (
	"github.com/t2m/t2m/internal/atomicfile"
	"github.com/t2m/t2m/internal/runlock"
)

// LockRun takes the run folder dir for the command what ("t2m train", "t2m eval", "t2m score", ...):
// it creates dir, takes its exclusive lock (internal/runlock: a second command on the same run is
// refused with a message naming the process that holds it) and then removes the temporaries that an
// earlier process killed mid-write left there (atomicfile.RemoveStale), which only the holder of the
// lock may do. The caller releases the lock when it has written its last file.
func LockRun(dir, what string) (*runlock.Lock, error) {
	l, err := runlock.Acquire(dir, what)
	if err != nil {
		return nil, err
	}
	if _, err := atomicfile.RemoveStale(dir); err != nil {
		l.Release()
		return nil, err
	}
	return l, nil
}
