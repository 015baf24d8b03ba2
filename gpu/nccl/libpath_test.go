package nccl

import (
	"path"
	"slices"
	"testing"
)

// fakeFS is a glob over a fixed set of files.
func fakeFS(files ...string) func(string) ([]string, error) {
	return func(pattern string) ([]string, error) {
		var out []string
		for _, f := range files {
			if ok, _ := path.Match(pattern, f); ok {
				out = append(out, f)
			}
		}
		return out, nil
	}
}

func getenv(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestCandidatesExplicit(t *testing.T) {
	got, explicit := Candidates(getenv("T2M_NCCL", "/opt/nccl/libnccl.so.2"), fakeFS("/usr/lib/python3/dist-packages/nvidia/nccl/lib/libnccl.so.2"))
	if !explicit || !slices.Equal(got, []string{"/opt/nccl/libnccl.so.2"}) {
		t.Fatalf("got %v, %v", got, explicit)
	}
}

func TestCandidatesSearch(t *testing.T) {
	fs := fakeFS(
		"/usr/local/lib/python3.11/dist-packages/nvidia/nccl/lib/libnccl.so.2",
		"/usr/local/lib/python3.12/dist-packages/nvidia/nccl/lib/libnccl.so.2",
		"/home/u/.local/lib/python3.12/site-packages/nvidia/nccl/lib/libnccl.so.2",
		"/opt/venv/bin/python3",
		"/opt/venv/lib/python3.12/site-packages/nvidia/cu13/lib/libnccl.so.2",
		"/ld/libnccl.so.2",
	)
	got, explicit := Candidates(getenv("HOME", "/home/u", "LD_LIBRARY_PATH", "/nope:/ld", "PATH", "/usr/bin:/opt/venv/bin"), fs)
	want := []string{
		"libnccl.so.2",
		"/ld/libnccl.so.2",
		"/usr/local/lib/python3.12/dist-packages/nvidia/nccl/lib/libnccl.so.2",
		"/usr/local/lib/python3.11/dist-packages/nvidia/nccl/lib/libnccl.so.2",
		"/home/u/.local/lib/python3.12/site-packages/nvidia/nccl/lib/libnccl.so.2",
		"/opt/venv/lib/python3.12/site-packages/nvidia/cu13/lib/libnccl.so.2",
	}
	if explicit || !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}
