// Package runlock gives one process at a time a run folder: t2m train, eval, baseline and score take an
// exclusive advisory lock (flock) on <run>/.lock before they write anything there, so two commands
// never interleave their files in one run. The lock file records who holds it (pid, command, start
// time), and a second taker is refused with a message naming that process. The kernel releases the
// lock when the holder exits, however it exits (SIGKILL and power cuts included), so a lock is never
// stale: the file left behind is only a record of the last holder.
package runlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FileName is the lock file inside a run folder.
const FileName = ".lock"

// ErrBusy is wrapped by Acquire's error when another process holds the run folder.
var ErrBusy = errors.New("run folder in use")

// Lock is a held run-folder lock; Release gives it back.
type Lock struct {
	f   *os.File
	dir string
}

// Acquire creates dir (and its parents) when missing and takes the exclusive lock of dir/.lock without
// waiting. what names the taker in the record ("t2m train", "t2m score", ...). When another process
// holds the lock, the error wraps ErrBusy and names the holder as its lock file records it.
func Acquire(dir, what string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("run folder %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("run folder %s: opening its lock file: %w", dir, err)
	}
	busy, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("run folder %s: locking %s: %w", dir, path, err)
	}
	if busy {
		holder := "another process"
		if b, rerr := os.ReadFile(path); rerr == nil && len(strings.TrimSpace(string(b))) > 0 {
			holder = strings.TrimSpace(string(b))
		}
		f.Close()
		return nil, fmt.Errorf("%w: %s is being written by %s: wait for it to finish (or stop it), or use another --run-name",
			ErrBusy, dir, holder)
	}
	// The record is for messages only: the lock itself is the flock, so a torn record is harmless.
	rec := fmt.Sprintf("%s (pid %d, since %s)\n", what, os.Getpid(), time.Now().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(rec), 0)
	}
	return &Lock{f: f, dir: dir}, nil
}

// Dir is the locked run folder.
func (l *Lock) Dir() string { return l.dir }

// Release gives the lock back (closing the file releases the flock). The lock file stays: removing it
// would let a third process lock a new file while a second still waits on the old one.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
