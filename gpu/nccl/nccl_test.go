//go:build t2mcuda

package nccl

import (
	"strings"
	"testing"
)

func TestLoadMissingLibrary(t *testing.T) {
	t.Setenv(EnvLib, "/nonexistent/libnccl.so.2")
	_, err := Load()
	if err == nil {
		t.Fatal("Load succeeded with T2M_NCCL=/nonexistent/libnccl.so.2")
	}
	for _, want := range []string{"T2M_NCCL=/nonexistent/libnccl.so.2", "cannot be loaded"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestLoadNCCL(t *testing.T) {
	l, err := Load()
	if err != nil {
		if strings.Contains(err.Error(), "not found") {
			t.Skipf("no NCCL here: %v", err)
		}
		t.Fatal(err)
	}
	v := l.Version()
	if !strings.HasPrefix(v, "2.") {
		t.Fatalf("NCCL version %q from %s", v, l.Path)
	}
	t.Logf("NCCL %s from %s", v, l.Path)
}

func TestVersionString(t *testing.T) {
	for code, want := range map[int]string{2708: "2.7.8", 21700: "2.17.0", 22707: "2.27.7", 23005: "2.30.5"} {
		if got := versionString(code); got != want {
			t.Errorf("versionString(%d) = %s, want %s", code, got, want)
		}
	}
}

func TestTimeoutFromEnv(t *testing.T) {
	t.Setenv(EnvTimeout, "")
	if d, err := Timeout(); err != nil || d != DefaultTimeout {
		t.Fatalf("unset: %v, %v", d, err)
	}
	t.Setenv(EnvTimeout, "90s")
	if d, err := Timeout(); err != nil || d.Seconds() != 90 {
		t.Fatalf("90s: %v, %v", d, err)
	}
	t.Setenv(EnvTimeout, "ten minutes")
	if _, err := Timeout(); err == nil || !strings.Contains(err.Error(), EnvTimeout) {
		t.Fatalf("bad value: %v", err)
	}
}
