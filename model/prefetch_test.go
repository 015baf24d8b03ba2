package model

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/t2m/t2m/safetensors"
)

// recordingReader is a checkpoint that logs Prefetch, Raw and Release of the projection weights and counts
// the tensors prefetched and not yet released; Prefetch fails from the failAt-th call on (0: never).
type recordingReader struct {
	*safetensors.Dir
	mu         sync.Mutex
	log        []string
	mapped     map[string]bool
	mostMapped int
	calls      int
	failAt     int
}

func (r *recordingReader) note(s string) { r.log = append(r.log, s) }

func (r *recordingReader) Prefetch(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.failAt > 0 && r.calls >= r.failAt {
		return errors.New("prefetch refused")
	}
	r.note("prefetch " + name)
	r.mapped[name] = true
	r.mostMapped = max(r.mostMapped, len(r.mapped))
	return r.Dir.Prefetch(name)
}

func (r *recordingReader) Raw(name string) ([]byte, error) {
	r.mu.Lock()
	if strings.HasSuffix(name, "_proj.weight") {
		r.note("raw " + name)
	}
	r.mu.Unlock()
	return r.Dir.Raw(name)
}

func (r *recordingReader) Release(name string) error {
	r.mu.Lock()
	delete(r.mapped, name)
	r.mu.Unlock()
	return r.Dir.Release(name)
}

// Loading with a quantizer maps each projection weight once, before the loader reads it, never more than
// prefetchAhead of them at a time; a prefetch that fails only ends prefetching, and the weights are the same
// either way.
func TestLoadPrefetchesProjections(t *testing.T) {
	cfg := smallConfig()
	src, err := RandomWeights(cfg, 41, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := writeBF16Checkpoint(t, src, false)
	var projections []string
	for i := range cfg.NumLayers {
		for _, s := range projSpecs(cfg) {
			projections = append(projections, layerPrefix(i)+s.module+".weight")
		}
	}
	if len(projections) <= prefetchAhead {
		t.Fatalf("%d projections: the window of %d is not exercised", len(projections), prefetchAhead)
	}
	var want *Weights
	for _, failAt := range []int{0, 4} {
		d, err := safetensors.OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		r := &recordingReader{Dir: d, mapped: map[string]bool{}, failAt: failAt}
		w, err := LoadWeights(r, dir, cfg, LoadOptions{Quantize: QuantizeNF4})
		d.Close()
		if err != nil {
			t.Fatalf("prefetch failing at call %d: %v", failAt, err)
		}
		prefetched, seen := map[string]int{}, map[string]bool{}
		for _, e := range r.log {
			verb, name, _ := strings.Cut(e, " ")
			switch verb {
			case "prefetch":
				prefetched[name]++
				if seen[name] {
					t.Errorf("fail at %d: %s prefetched after it was read", failAt, name)
				}
			case "raw":
				seen[name] = true
			}
		}
		for i, name := range projections {
			switch {
			case !seen[name]:
				t.Errorf("fail at %d: %s never read", failAt, name)
			case failAt == 0 && prefetched[name] != 1, failAt > 0 && i < failAt-1 && prefetched[name] != 1:
				t.Errorf("fail at %d: %s prefetched %d times", failAt, name, prefetched[name])
			case failAt > 0 && i >= failAt-1 && prefetched[name] != 0:
				t.Errorf("fail at %d: %s prefetched after prefetching failed", failAt, name)
			}
		}
		if r.mostMapped > prefetchAhead {
			t.Errorf("fail at %d: %d tensors mapped at once, the window is %d", failAt, r.mostMapped, prefetchAhead)
		}
		if len(r.mapped) != 0 {
			t.Errorf("fail at %d: %d tensors left mapped: %v", failAt, len(r.mapped), r.mapped)
		}
		if want == nil {
			want = w
			continue
		}
		for i, l := range w.Layers {
			for j, p := range l.Projections() {
				a, b := fmt.Sprint(p.W.Quant), fmt.Sprint(want.Layers[i].Projections()[j].W.Quant)
				if a != b {
					t.Errorf("layer %d projection %d differs when prefetching fails", i, j)
				}
			}
		}
	}
}
