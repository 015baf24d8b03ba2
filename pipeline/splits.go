package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/t2m/t2m/data"
)

// CheckRunName refuses run names that would escape the output folder ("" is allowed: the run's default
// name).
func CheckRunName(name string) error {
	if name == "" {
		return nil
	}
	if strings.ContainsAny(name, `/\`) || strings.Contains(name, "..") {
		return fmt.Errorf("run name %q must not contain '/', '\\' or '..'", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("run name %q must not contain control characters (line breaks, tabs)", name)
		}
	}
	return nil
}

// ReadSplit reads DIR/<split>.jsonl, keeping the first limit examples when limit > 0, and returns them
// with the file's path. A missing file is an error that says how to make the splits; so is an empty one.
func ReadSplit(dir, split string, limit int) ([]data.Example, string, error) {
	path := filepath.Join(dir, split+".jsonl")
	if _, err := os.Stat(path); err != nil {
		return nil, path, fmt.Errorf("%s split: %s not found: generate the splits with `t2m data --out %s` or pass --data-dir", split, path, dir)
	}
	exs, err := data.ReadExamples(path)
	if err != nil {
		return nil, path, err
	}
	if limit > 0 && len(exs) > limit {
		exs = exs[:limit]
	}
	if len(exs) == 0 {
		return nil, path, fmt.Errorf("%s has no examples", path)
	}
	return exs, path, nil
}
