package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// File is one file of a group written by WriteFiles.
type File struct {
	Path string                  // the file to create or replace
	Perm fs.FileMode             // its mode (exactly: the umask does not apply)
	Fill func(w io.Writer) error // writes its content; not buffered (see WriteFile)
}

// WriteFiles creates or replaces files that belong together (a split's predictions and its report, the
// three data splits) so that they are replaced together or not at all. First every file is written
// to its temporary file ".<name>.tmp-*" beside it and fsynced; an error there (a full disk, a fill
// that fails) removes the temporaries and leaves every file as it was. Then the files are renamed into
// place one by one, the previous version of each kept as a hard link ".<name>.old-*" until all renames
// are done; if a rename fails (a folder in the way), the files already replaced get their previous
// version back (or are removed when they had none) and the error names the file. Only a process death
// during the renames themselves can leave a mix; the leftovers are temporaries that RemoveStale clears.
func WriteFiles(files ...File) (err error) {
	tmps := make([]string, len(files))
	defer func() {
		if err != nil {
			for _, t := range tmps {
				if t != "" {
					os.Remove(t)
				}
			}
		}
	}()
	for i, f := range files {
		if st, serr := os.Lstat(f.Path); serr == nil && st.IsDir() {
			return fmt.Errorf("write %s: a folder is in the way: move it, or write somewhere else", f.Path)
		}
		tmps[i], err = writeTemp(f.Path, f.Perm, f.Fill)
		if err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
	}
	olds := make([]string, len(files)) // hard links to the previous versions ("" where there was none)
	done := 0
	defer func() {
		for _, o := range olds {
			if o != "" {
				os.Remove(o)
			}
		}
	}()
	undo := func() error {
		var errs []error
		for i := done - 1; i >= 0; i-- {
			p := files[i].Path
			if olds[i] != "" {
				if rerr := rename(olds[i], p); rerr != nil {
					errs = append(errs, fmt.Errorf("restore %s: %w", p, rerr))
				} else {
					olds[i] = ""
				}
			} else if rerr := os.Remove(p); rerr != nil {
				errs = append(errs, fmt.Errorf("remove the new %s: %w", p, rerr))
			}
		}
		return errors.Join(errs...)
	}
	for i, f := range files {
		if _, serr := os.Lstat(f.Path); serr == nil {
			old := tmps[i] + ".old"
			if lerr := os.Link(f.Path, old); lerr != nil {
				err = fmt.Errorf("write %s: keeping the previous version: %w", f.Path, lerr)
				return errors.Join(err, undo())
			}
			olds[i] = old
		}
		if rerr := rename(tmps[i], f.Path); rerr != nil {
			if olds[i] != "" {
				os.Remove(olds[i])
				olds[i] = ""
			}
			err = fmt.Errorf("write %s: %w", f.Path, rerr)
			return errors.Join(err, undo())
		}
		tmps[i] = ""
		done++
	}
	dirs := map[string]bool{}
	for _, f := range files {
		dirs[filepath.Dir(f.Path)] = true
	}
	for d := range dirs {
		if err = syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// writeTemp writes a complete, fsynced temporary file beside path and returns its name.
func writeTemp(path string, perm fs.FileMode, fill func(w io.Writer) error) (name string, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = fill(f); err != nil {
		return "", err
	}
	if err = f.Sync(); err != nil {
		return "", fmt.Errorf("sync: %w", err)
	}
	if err = f.Close(); err != nil {
		return "", err
	}
	if err = os.Chmod(f.Name(), perm); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// RemoveStale removes the temporaries ".<name>.tmp-*" (files and folders) that WriteFile, WriteFiles and
// ReplaceDir leave in dir when the process dies before their rename (a SIGKILL, a power cut), and
// returns their names. Call it only while no other process writes in dir (t2m holds the run folder's
// lock, internal/runlock): a live writer's temporary looks the same. A missing dir is not an error.
func RemoveStale(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("clean %s: %w", dir, err)
	}
	var removed []string
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, ".") || !strings.Contains(n, ".tmp-") {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
			return removed, fmt.Errorf("clean %s: removing the stale %s: %w", dir, n, err)
		}
		removed = append(removed, n)
	}
	return removed, nil
}
