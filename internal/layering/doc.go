// Package layering holds no code: its test (layering_test.go) lists which t2m packages may not import
// which, and fails when `go list` shows that one does, in the default build and in the CUDA build
// (-tags t2mcuda). The rules and the reasons for them are in the test's rule table and in ARCHITECTURE.md
// at the repository root; change both together.
package layering
