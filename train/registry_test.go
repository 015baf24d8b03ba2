package train

import (
	"slices"
	"testing"

	"github.com/t2m/t2m/model"
)

// The built-in "cpu" device trains and generates; its generator is model.Generator's greedy decode.
func TestCPUDevice(t *testing.T) {
	d, ok := LookupDevice("cpu")
	if !ok || d.NewBackend == nil || d.NewGenerator == nil || d.Usable() != nil {
		t.Fatalf("cpu device %+v, registered %v", d, ok)
	}
	if _, ok := LookupBackend("cpu"); !ok {
		t.Error("LookupBackend(cpu) found nothing")
	}
	if _, ok := LookupBackend("nosuch"); ok {
		t.Error("LookupBackend(nosuch) found a backend")
	}
	if !slices.Contains(DeviceNames(), "cpu") {
		t.Errorf("DeviceNames %v lacks cpu", DeviceNames())
	}
	w, err := model.RandomWeights(smallConfig(), 5, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := d.NewGenerator(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ref, err := model.NewGenerator(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	prompts := [][]int32{{1, 2, 3}, {4, 5}} // [2][≤ 3] ids
	opt := model.GenerateOptions{MaxNewTokens: 4}
	got, err := g.Generate(prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ref.Generate(prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	if g.Describe() != "" || len(got) != 2 || !slices.Equal(got[0], want[0]) || !slices.Equal(got[1], want[1]) {
		t.Errorf("cpu generator %q gave %v, model.Generator %v", g.Describe(), got, want)
	}
}

// A registered device replaces the entry of its name; LookupBackend follows it.
func TestRegisterDevice(t *testing.T) {
	old, had := LookupDevice("cpu")
	t.Cleanup(func() {
		if had {
			RegisterDevice(old)
		}
	})
	RegisterDevice(Device{Name: "cpu", NewGenerator: old.NewGenerator})
	if _, ok := LookupBackend("cpu"); ok {
		t.Error("a device without NewBackend still gives a training backend")
	}
	if d, _ := LookupDevice("cpu"); d.Usable() != nil {
		t.Error("a device without Describe is not usable")
	}
}
