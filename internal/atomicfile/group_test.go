package atomicfile

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// text is a File filled with s.
func text(path, s string) File {
	return File{Path: path, Perm: 0o644, Fill: func(w io.Writer) error { _, err := io.WriteString(w, s); return err }}
}

func readAll(t *testing.T, paths ...string) []string {
	t.Helper()
	var out []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			out = append(out, "<"+err.Error()+">")
			continue
		}
		out = append(out, string(b))
	}
	return out
}

func TestWriteFilesAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	if err := WriteFiles(text(a, "a1"), text(b, "b1"), text(c, "c1")); err != nil {
		t.Fatal(err)
	}
	// A full disk while writing the third: nothing is replaced and no temporary stays.
	full := File{Path: c, Perm: 0o644, Fill: func(w io.Writer) error { return syscall.ENOSPC }}
	if err := WriteFiles(text(a, "a2"), text(b, "b2"), full); err == nil {
		t.Fatal("WriteFiles with a failing fill succeeded")
	}
	if got := readAll(t, a, b, c); !slices.Equal(got, []string{"a1", "b1", "c1"}) {
		t.Errorf("after a failed fill the files are %q, want the old ones", got)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("entries %v, want a b c only", got)
	}
	// The third rename fails: the first two get their previous versions back.
	failRenameTo(t, c)
	if err := WriteFiles(text(a, "a3"), text(b, "b3"), text(c, "c3")); err == nil {
		t.Fatal("WriteFiles with a failing rename succeeded")
	}
	if got := readAll(t, a, b, c); !slices.Equal(got, []string{"a1", "b1", "c1"}) {
		t.Errorf("after a failed rename the files are %q, want the old ones", got)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("entries %v, want a b c only", got)
	}
	// A new file whose group fails is removed again.
	d := filepath.Join(dir, "d")
	failRenameTo(t, c)
	if err := WriteFiles(text(d, "d1"), text(c, "c4")); err == nil {
		t.Fatal("WriteFiles with a failing rename succeeded")
	}
	if _, err := os.Stat(d); err == nil {
		t.Error("new file d left behind by a failed group")
	}
	if err := WriteFiles(text(a, "a5"), text(c, "c5")); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, a, b, c); !slices.Equal(got, []string{"a5", "b1", "c5"}) {
		t.Errorf("files %q after a good write", got)
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{".checkpoint.tmp-1", "checkpoint", "adapter.old"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{".report.json.tmp-2", "report.json", ".lock", "x.tmp-3"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := RemoveStale(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{".checkpoint.tmp-1", ".report.json.tmp-2"}) {
		t.Errorf("removed %v", removed)
	}
	if got := names(t, dir); !slices.Equal(got, []string{".lock", "adapter.old", "checkpoint", "report.json", "x.tmp-3"}) {
		t.Errorf("left %v", got)
	}
	if _, err := RemoveStale(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("missing dir: %v", err)
	}
}
