package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestGPUsFlagRefusals: --gpus is refused, before anything is loaded or written, where a data-parallel run
// cannot happen: a count below 1, the CPU, this CPU-only binary, and a launcher's environment that says
// otherwise or lacks the rendezvous address.
func TestGPUsFlagRefusals(t *testing.T) {
	data := hostileData(t)
	for _, c := range []struct {
		args []string
		env  map[string]string
		want []string
	}{
		{args: []string{"--gpus", "0"}, want: []string{"--gpus 0 must be ≥ 1"}},
		{args: []string{"--gpus", "2", "--device", "cpu"}, want: []string{"--gpus 2 needs --device cuda", "not --device cpu"}},
		{args: []string{"--gpus", "2"}, want: []string{"--gpus 2: this binary was built without CUDA", "make build-cuda"}},
		{args: []string{"--gpus", "3"}, env: map[string]string{"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"},
			want: []string{"--gpus 3, but the environment says this process is rank 0 of WORLD_SIZE 2", "leave --gpus out"}},
		{env: map[string]string{"RANK": "1", "WORLD_SIZE": "2"}, want: []string{"MASTER_ADDR"}},
		{env: map[string]string{"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"},
			want: []string{"this binary was built without CUDA"}},
	} {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		for _, cmd := range []string{"train", "baseline"} {
			runs := t.TempDir()
			args := append(trainArgs(data, runs), c.args...)
			if cmd == "baseline" {
				args = append([]string{"baseline", "--model", "tiny", "--data-dir", data, "--output-dir", runs, "--run-name", "r"}, c.args...)
			}
			msg, err := runApp(t, args...)
			wantErr(t, cmd+" "+strings.Join(c.args, " ")+" "+strings.Join(envList(c.env), " "), msg, err, c.want...)
			noFile(t, filepath.Join(runs, "r"))
		}
		for k := range c.env {
			t.Setenv(k, "")
		}
	}
}

func envList(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}
