package runlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAcquireIsExclusiveAndNamesTheHolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "runs", "r")
	l, err := Acquire(dir, "t2m train")
	if err != nil {
		t.Fatal(err)
	}
	// flock belongs to the open file, so a second Acquire in this process conflicts like another process.
	_, err = Acquire(dir, "t2m score")
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("second Acquire: %v, want ErrBusy", err)
	}
	if want := fmt.Sprintf("is being written by t2m train (pid %d, since", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the holder (%q)", err, want)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(dir, "t2m score")
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	defer l2.Release()
	b, _ := os.ReadFile(filepath.Join(dir, FileName))
	if !strings.HasPrefix(string(b), "t2m score (pid ") {
		t.Errorf("lock record %q, want the new holder", b)
	}
}
