// Package version is t2m's version line, read from the module build info that `go build` stamps: the one
// string `t2m --version` prints and every report and training record carries (provenance), so a result
// names the binary that made it.
package version

import (
	"runtime/debug"
	"strings"
)

// String is t2m's version line from the running binary's build info: the module version ("(devel)" for a
// build of a checkout), the VCS revision and commit time that `go build` stamps, "-dirty" when the tree
// had uncommitted changes, the Go version and the build tags.
func String() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (no build info)"
	}
	return Format(bi)
}

// Format renders a build info as String does.
func Format(bi *debug.BuildInfo) string {
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	parts := []string{v}
	if rev := settings["vcs.revision"]; rev != "" {
		if settings["vcs.modified"] == "true" {
			rev += "-dirty"
		}
		parts = append(parts, "revision "+rev)
	} else {
		parts = append(parts, "revision unknown (not built from a VCS checkout)")
	}
	if t := settings["vcs.time"]; t != "" {
		parts = append(parts, "committed "+t)
	}
	parts = append(parts, bi.GoVersion)
	if tags := settings["-tags"]; tags != "" {
		parts = append(parts, "tags "+tags)
	}
	return strings.Join(parts, ", ")
}
