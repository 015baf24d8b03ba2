package main

import (
	"runtime/debug"

	t2mversion "github.com/t2m/t2m/internal/version"
)

// version is t2m's version line (internal/version.String): the same string every report's provenance
// records as t2m_version.
func version() string { return t2mversion.String() }

// formatVersion renders a build info as version() does.
func formatVersion(bi *debug.BuildInfo) string { return t2mversion.Format(bi) }
