//go:build !unix

package runlock

import "os"

// tryLock has no flock to take on this platform: the run folder is not protected against a second
// writer there (t2m's supported platforms are unix).
func tryLock(f *os.File) (busy bool, err error) { return false, nil }
