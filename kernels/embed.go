package kernels

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed *.ptx
var ptxFiles embed.FS

// PTX returns the embedded PTX of one kernel file, named without extension ("nf4" for nf4.ptx).
func PTX(name string) (string, error) {
	b, err := ptxFiles.ReadFile(name + ".ptx")
	if err != nil {
		return "", fmt.Errorf("kernels: no embedded PTX %q (known: %s): %w", name, strings.Join(Names(), ", "), err)
	}
	return string(b), nil
}

// Names lists the embedded kernel files, without extension, sorted.
func Names() []string {
	entries, err := fs.ReadDir(ptxFiles, ".")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".ptx"); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// SM90 ends the name of a kernel file's sm_90 build (nf4_gemv_sm90 beside nf4_gemv): the same kernels with
// programmatic dependent launch (pdl.cuh), for Hopper.
const SM90 = "_sm90"

// SourceHashLine is the first line `make kernels` writes into a PTX file: the source's name and SHA-256.
func SourceHashLine(source string, sha256hex string) string {
	return "// t2m-source: " + source + " sha256=" + sha256hex
}
