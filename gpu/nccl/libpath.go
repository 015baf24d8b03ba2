package nccl

import (
	"path/filepath"
	"slices"
	"strings"
)

// LibName is the name dlopen looks for by the loader's default search (LD_LIBRARY_PATH, ld.so.cache).
const LibName = "libnccl.so.2"

// EnvLib names the environment variable that, when set, is the only library tried.
const EnvLib = "T2M_NCCL"

// wheelGlobs are where pip puts NCCL: the nvidia-nccl-cu12 / -cu13 wheels install
// <site-packages>/nvidia/nccl/lib/libnccl.so.2 (the * also covers nvidia/cu13/lib).
var wheelGlobs = []string{
	"/usr/local/lib/python3*/dist-packages/nvidia/*/lib/" + LibName,
	"/usr/local/lib/python3*/site-packages/nvidia/*/lib/" + LibName,
	"/usr/lib/python3/dist-packages/nvidia/*/lib/" + LibName,
	"/usr/lib/python3*/site-packages/nvidia/*/lib/" + LibName,
	"/usr/lib64/python3*/site-packages/nvidia/*/lib/" + LibName,
	"/opt/conda/lib/python3*/site-packages/nvidia/*/lib/" + LibName,
}

// Candidates lists the libraries Load tries, in order: only $T2M_NCCL when it is set (explicit true);
// otherwise LibName by the default search, then libnccl.so.2 in each folder of LD_LIBRARY_PATH, then the
// NCCL of pip's wheels in the usual Python site-packages (system, ~/.local, $VIRTUAL_ENV, $CONDA_PREFIX,
// and the environment of each python3 on PATH), as far as they exist. getenv is os.Getenv, glob
// filepath.Glob (parameters so that tests need no files).
func Candidates(getenv func(string) string, glob func(string) ([]string, error)) (paths []string, explicit bool) {
	if p := strings.TrimSpace(getenv(EnvLib)); p != "" {
		return []string{p}, true
	}
	paths = []string{LibName}
	add := func(p string) {
		if !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	for _, dir := range filepath.SplitList(getenv("LD_LIBRARY_PATH")) {
		if dir != "" {
			if m, _ := glob(filepath.Join(dir, LibName)); len(m) > 0 {
				add(m[0])
			}
		}
	}
	globs := slices.Clone(wheelGlobs)
	prefix := func(root string) {
		if root != "" {
			globs = append(globs, filepath.Join(root, "lib", "python3*", "site-packages", "nvidia", "*", "lib", LibName),
				filepath.Join(root, "lib", LibName))
		}
	}
	if home := getenv("HOME"); home != "" {
		globs = append(globs, filepath.Join(home, ".local", "lib", "python3*", "site-packages", "nvidia", "*", "lib", LibName))
	}
	prefix(getenv("VIRTUAL_ENV"))
	prefix(getenv("CONDA_PREFIX"))
	for _, dir := range filepath.SplitList(getenv("PATH")) {
		if dir == "" {
			continue
		}
		if m, _ := glob(filepath.Join(dir, "python3")); len(m) > 0 {
			prefix(filepath.Dir(filepath.Clean(dir))) // <env>/bin/python3 → <env>
		}
	}
	for _, g := range globs {
		m, _ := glob(g)
		slices.Sort(m)
		slices.Reverse(m) // the newest python3.N first
		for _, p := range m {
			add(p)
		}
	}
	return paths, false
}
