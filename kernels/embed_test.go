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
		for _, n := range []string{name, name + SM90} {
			ptx, err := PTX(n)
			if err != nil {
				if n == name {
					t.Errorf("%s has no PTX: run `make kernels`: %v", src, err)
				}
				continue // an sm_90 build is optional
			}
			first, _, _ := strings.Cut(ptx, "\n")
			if first != want {
				t.Errorf("%s.ptx is stale: first line %q, want %q: run `make kernels` and commit the PTX", n, first, want)
			}
			if !strings.Contains(ptx, ".entry") {
				t.Errorf("%s.ptx has no kernel entry", n)
			}
		}
	}
}

// TestSM90PTXWaits fails when a kernel of an sm_90 PTX (launched with programmatic dependent launch, see
// pdl.cuh) never waits for the kernel before it, or when an sm_80 PTX has those instructions (it must load on
// cards without them), or when an sm_90 PTX has a kernel its sm_80 twin lacks.
func TestSM90PTXWaits(t *testing.T) {
	entryRE := regexp.MustCompile(`\.entry\s+(\w+)`)
	n := 0
	for _, name := range Names() {
		ptx, err := PTX(name)
		if err != nil {
			t.Fatal(err)
		}
		base, sm90 := strings.CutSuffix(name, SM90)
		if !sm90 {
			if strings.Contains(ptx, "griddepcontrol") {
				t.Errorf("%s.ptx (sm_80) holds griddepcontrol instructions", name)
			}
			continue
		}
		n++
		twin, err := PTX(base)
		if err != nil {
			t.Fatalf("%s.ptx has no sm_80 twin: %v", name, err)
		}
		locs := entryRE.FindAllStringSubmatchIndex(ptx, -1)
		if len(locs) == 0 {
			t.Errorf("%s.ptx has no kernel entry", name)
		}
		for i, l := range locs {
			end := len(ptx)
			if i+1 < len(locs) {
				end = locs[i+1][0]
			}
			k := ptx[l[2]:l[3]]
			if !strings.Contains(ptx[l[0]:end], "griddepcontrol.wait") {
				t.Errorf("%s.ptx: kernel %s never calls pdl_wait", name, k)
			}
			if !strings.Contains(twin, ".entry "+k+"(") {
				t.Errorf("%s.ptx: kernel %s is not in %s.ptx", name, k, base)
			}
		}
	}
	if n == 0 {
		t.Error("no sm_90 PTX embedded")
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
		n = strings.TrimSuffix(n, SM90)
		if _, err := os.Stat(n + ".cu"); err != nil {
			t.Errorf("%s.ptx has no %s.cu beside it: %v", n, n, err)
		}
	}
}
