package kernels

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPTXMatchesSource fails when a .cu file changed without `make kernels`, or has no PTX.
func TestPTXMatchesSource(t *testing.T) {
	sources, err := filepath.Glob("*.cu")
	if err != nil {
		t.Fatal(err)
	}
	if len(sources) == 0 {
		t.Fatal("no .cu sources found in kernels/")
	}
	for _, src := range sources {
		sum, err := sourceHash(src)
		if err != nil {
			t.Fatal(err)
		}
		want := SourceHashLine(src, sum)
		name := strings.TrimSuffix(src, ".cu")
		ptx, err := PTX(name)
		if err != nil {
			t.Errorf("%s has no PTX: run `make kernels`: %v", src, err)
			continue
		}
		first, _, _ := strings.Cut(ptx, "\n")
		if first != want {
			t.Errorf("%s.ptx is stale: first line %q, want %q: run `make kernels` and commit the PTX", name, first, want)
		}
		if !strings.Contains(ptx, ".entry") {
			t.Errorf("%s.ptx has no kernel entry", name)
		}
	}
}

// includeRE matches a local include line, as the Makefile's sed does.
var includeRE = regexp.MustCompile(`(?m)^[ \t]*.include "(.*)".*$`)

// sourceHash is the SHA-256 of a .cu file followed by each header it includes with #include "x", in
// order: the hash `make kernels` writes into the PTX's first line.
func sourceHash(src string) (string, error) {
	body, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write(body)
	for _, m := range includeRE.FindAllSubmatch(body, -1) {
		hdr, err := os.ReadFile(string(m[1]))
		if err != nil {
			return "", fmt.Errorf("%s includes %s: %w", src, m[1], err)
		}
		h.Write(hdr)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// TestPTXHasSource fails when a PTX file's source is gone.
func TestPTXHasSource(t *testing.T) {
	for _, n := range Names() {
		if _, err := os.Stat(n + ".cu"); err != nil {
			t.Errorf("%s.ptx has no %s.cu beside it: %v", n, n, err)
		}
	}
}
