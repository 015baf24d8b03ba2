package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// rename is os.Rename; tests replace it to interrupt a swap halfway.
var rename = os.Rename

// WriteFile creates or replaces path with what fill writes, atomically: fill writes a
// temporary file ".<name>.tmp-*" in path's directory, which is fsynced, given mode perm
// (exactly: the umask does not apply), renamed over path, and the directory fsynced so
// the rename survives a power cut. On any error the temporary file is removed and path
// is left as it was. fill's writes are not buffered: wrap w in a bufio.Writer (and
// flush it) for many small writes.
func WriteFile(path string, perm fs.FileMode, fill func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = fill(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Chmod(f.Name(), perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

// ReplaceDir creates or replaces the folder dir with what fill writes into tmpDir, a new
// empty folder ".<name>.tmp-*" beside dir (parents of dir are created, mode 0755).
// fill should write its files with WriteFile so that their contents are durable.
//
// The swap: the complete tmpDir gets mode 0755; the previous dir, if any, is renamed to
// dir+".old" (a stale dir.old is removed first); tmpDir is renamed to dir; dir's parent
// is fsynced; dir.old is removed. If the second rename fails, the previous dir is moved
// back. If the process dies between the two renames, dir is missing and dir.old holds
// the previous version complete: readers may fall back to it, and the next ReplaceDir
// keeps it until the new version is in place.
//
// On any error tmpDir is removed and dir is left as it was; errors of fill are returned
// as they are, the others name the step and paths, not the purpose (the caller's).
func ReplaceDir(dir string, fill func(tmpDir string) error) (err error) {
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err = fill(tmp); err != nil {
		return err
	}
	if err = os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err = syncDir(tmp); err != nil {
		return err
	}

	old := dir + ".old"
	movedAside := false
	if _, statErr := os.Lstat(dir); statErr == nil {
		// dir is complete, so a dir.old left by an interrupted swap is stale.
		if err = os.RemoveAll(old); err != nil {
			return fmt.Errorf("remove the stale %s: %w", old, err)
		}
		if err = rename(dir, old); err != nil {
			return fmt.Errorf("move the previous version aside: %w", err)
		}
		movedAside = true
	} else if !errors.Is(statErr, fs.ErrNotExist) {
		return statErr
	}
	if err = rename(tmp, dir); err != nil {
		if movedAside {
			if restoreErr := rename(old, dir); restoreErr != nil {
				err = errors.Join(err, fmt.Errorf("restore the previous version: %w", restoreErr))
			}
		}
		return fmt.Errorf("move the new version into place: %w", err)
	}
	if err = syncDir(parent); err != nil {
		return err
	}
	// The new version is durable; a dir.old that survives (removal failed, or was
	// interrupted) is stale and harmless: the next ReplaceDir removes it.
	os.RemoveAll(old)
	return nil
}

// syncDir fsyncs a directory so that renames and new entries inside it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
