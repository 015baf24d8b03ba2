package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/t2m/t2m", Version: "v0.0.0-2026-abc"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"},
			{Key: "vcs.time", Value: "2026-11-30T10:00:00Z"}, {Key: "-tags", Value: "t2mcuda"}}}
	if got, want := Format(bi), "v0.0.0-2026-abc, revision abc123-dirty, committed 2026-11-30T10:00:00Z, go1.26.8, tags t2mcuda"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if s := String(); !strings.Contains(s, "go1.") {
		t.Errorf("String() = %q, want the Go version in it", s)
	}
}
