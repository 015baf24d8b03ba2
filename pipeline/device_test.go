package pipeline

import (
	"errors"
	"strings"
	"testing"

	"github.com/t2m/t2m/model"
)

// ResolveDevice in the CPU build ("cuda" not registered) and with a fake "cuda" that is usable or not.
func TestResolveDevice(t *testing.T) {
	tiny, err := model.Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	big, err := model.Lookup("qwen2.5-coder-7b")
	if err != nil {
		t.Fatal(err)
	}
	type tc struct {
		flag, cmd string
		cfg       model.Config
		want, err string // the device, or a part of the error
	}
	check := func(cases []tc) {
		t.Helper()
		for _, c := range cases {
			got, err := ResolveDevice(c.flag, c.cmd, "m", c.cfg)
			switch {
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Errorf("%q %s: err %v, want it to mention %q", c.flag, c.cmd, err, c.err)
			case c.err == "" && (err != nil || got != c.want):
				t.Errorf("%q %s: %q, %v; want %q", c.flag, c.cmd, got, err, c.want)
			}
		}
	}
	if _, ok := lookupDevice("cuda"); !ok { // the default build
		check([]tc{
			{"cpu", "train", big.Config, "cpu", ""},
			{"auto", "train", tiny.Config, "cpu", ""},
			{"", "eval", tiny.Config, "cpu", ""},
			{"cuda", "train", tiny.Config, "", "no GPU backend for train"},
			{"auto", "baseline", big.Config, "", "built without CUDA"},
			{"auto", "baseline", big.Config, "", "7.6B parameters"},
			{"tpu", "train", tiny.Config, "", "want auto, cpu or cuda"},
		})
	}
	gen := &fakeGenerator{}
	withFakeCUDA(t, errors.New("no usable NVIDIA GPU"), gen)
	check([]tc{
		{"auto", "eval", tiny.Config, "cpu", ""},
		{"cuda", "eval", tiny.Config, "", "--device cuda: no usable NVIDIA GPU"},
		{"cuda", "train", tiny.Config, "", "no GPU backend for train"}, // the fake cannot train
		{"auto", "eval", big.Config, "", "no usable NVIDIA GPU"},
	})
	withFakeCUDA(t, nil, gen)
	check([]tc{
		{"auto", "eval", big.Config, "cuda", ""},
		{"cuda", "baseline", tiny.Config, "cuda", ""},
		{"auto", "train", tiny.Config, "cpu", ""},
		{"cpu", "eval", tiny.Config, "cpu", ""},
	})
}
