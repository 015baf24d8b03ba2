package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

var errBoom = errors.New("boom")

// names lists the entries of dir, sorted.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeDir is a ReplaceDir fill that writes one file f.txt holding content.
func writeDir(content string) func(string) error {
	return func(tmp string) error {
		return WriteFile(filepath.Join(tmp, "f.txt"), 0o644, func(w io.Writer) error {
			_, err := io.WriteString(w, content)
			return err
		})
	}
}

func TestWriteFileReplacesWithMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.json")
	for _, content := range []string{"first", "second"} {
		if err := WriteFile(p, 0o640, func(w io.Writer) error {
			_, err := io.WriteString(w, content)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, p); got != content {
			t.Errorf("content %q, want %q", got, content)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 (CreateTemp's 0600 must not survive)", fi.Mode().Perm())
	}
	if got := names(t, dir); !slices.Equal(got, []string{"r.json"}) {
		t.Errorf("entries %v, want r.json alone", got)
	}
}

func TestWriteFileFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.json")
	os.WriteFile(p, []byte("old"), 0o644)
	err := WriteFile(p, 0o644, func(w io.Writer) error {
		io.WriteString(w, "half")
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Errorf("err = %v, want one wrapping the fill's error", err)
	}
	if got := readFile(t, p); got != "old" {
		t.Errorf("content %q after a failed write, want the old", got)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"r.json"}) {
		t.Errorf("entries %v, want r.json alone (no temp file)", got)
	}
}

func TestWriteFileFailedRenameLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.json")
	os.Mkdir(p, 0o755) // a folder in the way: the rename fails
	if err := WriteFile(p, 0o644, func(w io.Writer) error { return nil }); err == nil {
		t.Fatal("no error renaming a file over a folder")
	}
	if got := names(t, dir); !slices.Equal(got, []string{"r.json"}) {
		t.Errorf("entries %v, want the folder alone", got)
	}
}

func TestReplaceDirCreatesAndReplaces(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "runs", "ad") // runs/ does not exist yet
	for _, content := range []string{"v1", "v2"} {
		if err := ReplaceDir(dir, writeDir(content)); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(dir, "f.txt")); got != content {
			t.Errorf("content %q, want %q", got, content)
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, want 0755 (MkdirTemp's 0700 must not survive)", fi.Mode().Perm())
	}
	if got := names(t, filepath.Join(root, "runs")); !slices.Equal(got, []string{"ad"}) {
		t.Errorf("entries %v, want ad alone (no temp folder, no ad.old)", got)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"f.txt"}) {
		t.Errorf("folder holds %v, want only the new version's f.txt", got)
	}
}

func TestReplaceDirFillFailureKeepsOld(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "ad")
	if err := ReplaceDir(dir, writeDir("v1")); err != nil {
		t.Fatal(err)
	}
	err := ReplaceDir(dir, func(tmp string) error {
		writeDir("half")(tmp)
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Errorf("err = %v, want the fill's error", err)
	}
	if got := readFile(t, filepath.Join(dir, "f.txt")); got != "v1" {
		t.Errorf("content %q after a failed replace, want v1", got)
	}
	if got := names(t, root); !slices.Equal(got, []string{"ad"}) {
		t.Errorf("entries %v, want ad alone (no temp folder)", got)
	}
}

// failRenameTo makes the first rename to dst fail, as a full disk or a crash would.
func failRenameTo(t *testing.T, dst string) {
	t.Helper()
	failed := false
	rename = func(from, to string) error {
		if to == dst && !failed {
			failed = true
			return errBoom
		}
		return os.Rename(from, to)
	}
	t.Cleanup(func() { rename = os.Rename })
}

func TestReplaceDirRestoresOldWhenSwapFails(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "ad")
	if err := ReplaceDir(dir, writeDir("v1")); err != nil {
		t.Fatal(err)
	}
	failRenameTo(t, dir) // the old is moved aside, then the new cannot take its place; the restore works
	if err := ReplaceDir(dir, writeDir("v2")); !errors.Is(err, errBoom) {
		t.Errorf("err = %v, want the rename's error", err)
	}
	if got := readFile(t, filepath.Join(dir, "f.txt")); got != "v1" {
		t.Errorf("content %q after a failed swap, want v1 restored", got)
	}
	if got := names(t, root); !slices.Equal(got, []string{"ad"}) {
		t.Errorf("entries %v, want ad alone (no temp folder, no ad.old)", got)
	}
}

func TestReplaceDirMoveAsideFailureKeepsOld(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "ad")
	if err := ReplaceDir(dir, writeDir("v1")); err != nil {
		t.Fatal(err)
	}
	failRenameTo(t, dir+".old")
	if err := ReplaceDir(dir, writeDir("v2")); !errors.Is(err, errBoom) {
		t.Errorf("err = %v, want the rename's error", err)
	}
	if got := readFile(t, filepath.Join(dir, "f.txt")); got != "v1" {
		t.Errorf("content %q, want v1 untouched", got)
	}
	if got := names(t, root); !slices.Equal(got, []string{"ad"}) {
		t.Errorf("entries %v, want ad alone", got)
	}
}

// A process killed between the two renames leaves dir missing and the previous version
// in dir.old. A failed replace then must keep dir.old; a successful one removes it.
func TestReplaceDirAfterInterruptedSwap(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "ad")
	if err := ReplaceDir(dir, writeDir("v1")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir, dir+".old"); err != nil { // the crash
		t.Fatal(err)
	}
	if err := ReplaceDir(dir, func(string) error { return errBoom }); !errors.Is(err, errBoom) {
		t.Errorf("err = %v", err)
	}
	if got := readFile(t, filepath.Join(dir+".old", "f.txt")); got != "v1" {
		t.Errorf("ad.old holds %q after a failed replace, want v1", got)
	}
	if err := ReplaceDir(dir, writeDir("v2")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "f.txt")); got != "v2" {
		t.Errorf("content %q, want v2", got)
	}
	if got := names(t, root); !slices.Equal(got, []string{"ad"}) {
		t.Errorf("entries %v, want ad alone (ad.old removed once v2 is in place)", got)
	}
}

// A stale dir.old beside a complete dir is removed before the swap, not mistaken for
// the previous version.
func TestReplaceDirRemovesStaleOld(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "ad")
	if err := ReplaceDir(dir, writeDir("v1")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir+".old", "stale"), 0o755)
	if err := ReplaceDir(dir, writeDir("v2")); err != nil {
		t.Fatal(err)
	}
	if got := names(t, root); !slices.Equal(got, []string{"ad"}) {
		t.Errorf("entries %v, want ad alone", got)
	}
}
