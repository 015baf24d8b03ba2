package train

import (
	"errors"
	"sort"
	"sync"

	"github.com/t2m/t2m/model"
)

// Device is one entry of t2m's single device registry: everything a pipeline needs from a device, for
// training and for generation, under one name. "cpu" is built in (the CPU Backend of this package and
// model.Generator); the t2mcuda build's gpu package registers "cuda" from its init. The pipelines
// (package pipeline) consult it; nothing else picks a device.
//
// It lives in train, not in a package of its own, because its training half is train's BackendFactory
// (a registry package would have to import train) and train's LookupBackend, which callers and the gpu
// tests use, must read this same table (so train could not import such a package back).
type Device struct {
	// Name is the --device value: "cpu", "cuda".
	Name string
	// Describe opens the device and returns one line about it (name, memory), or why it cannot be used on
	// this machine (no GPU, no driver); it keeps nothing open. Usable calls it.
	Describe func() (string, error)
	// NewBackend makes a training backend; nil when the device cannot train.
	NewBackend BackendFactory
	// NewGenerator makes a greedy decoder; nil when the device cannot generate.
	NewGenerator GeneratorFactory
	// NewCollective joins this process, rank of world, to a data-parallel group whose rank 0 serves the
	// rendezvous at addr (host:port), on the device's localRank-th unit (a GPU of this host); nil when the
	// device cannot run data-parallel.
	NewCollective func(rank, world, localRank int, addr string) (Collective, error)
	// Count is how many units of the device this process sees (GPUs); nil where it makes no sense.
	Count func() (int, error)
	// NewQuantizer gives a model.QuantizeFunc that quantizes to NF4 on the device while a checkpoint loads
	// (byte for byte model.QuantizeNF4), and the function that frees what it holds; nil: the host's.
	NewQuantizer func() (q model.QuantizeFunc, close func() error, err error)
}

// Usable reports whether the device can run on this machine now: nil, or the reason it cannot.
func (d Device) Usable() error {
	if d.Describe == nil {
		return nil
	}
	_, err := d.Describe()
	return err
}

// Generator decodes greedily with model.Generator.Generate's semantics: argmax (first index on ties),
// each sequence ends after one of opt.StopIDs (not included) or opt.MaxNewTokens new tokens.
type Generator interface {
	// Generate returns the new tokens of each prompt (prompts[i] → result[i]).
	Generate(prompts [][]int32, opt model.GenerateOptions) ([][]int32, error)
	// Describe is one line about where and how the weights are held; "" on the CPU, where there is
	// nothing to say.
	Describe() string
	// Close frees what the generator holds (device memory).
	Close() error
}

// GeneratorFactory makes a Generator for w with the adapter lora applied (nil: the base model).
type GeneratorFactory func(w *model.Weights, lora *model.LoRAParams) (Generator, error)

// ErrNoCUDA is why "cuda" is missing from a binary built without the t2mcuda tag (gpu.ErrNoCUDA is this
// error too).
var ErrNoCUDA = errors.New("this binary was built without CUDA; build with `make build-cuda` (CGO, -tags t2mcuda) " +
	"and run bin/t2m-cuda on a machine with an NVIDIA GPU")

var (
	devicesMu sync.Mutex
	devices   = map[string]Device{
		"cpu": {
			Name:         "cpu",
			Describe:     func() (string, error) { return "cpu", nil },
			NewBackend:   newCPUBackend,
			NewGenerator: newCPUGenerator,
		},
	}
)

// RegisterDevice adds d to the registry, replacing an entry of the same name; the CUDA build registers
// "cuda" from an init.
func RegisterDevice(d Device) {
	devicesMu.Lock()
	defer devicesMu.Unlock()
	devices[d.Name] = d
}

// LookupDevice returns the registered device of that name, and whether there is one.
func LookupDevice(name string) (Device, bool) {
	devicesMu.Lock()
	defer devicesMu.Unlock()
	d, ok := devices[name]
	return d, ok
}

// DeviceNames lists the registered devices, sorted.
func DeviceNames() []string {
	devicesMu.Lock()
	defer devicesMu.Unlock()
	names := make([]string, 0, len(devices))
	for n := range devices {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// LookupBackend returns the training backend factory of a registered device, and whether the device is
// registered and can train (a shorthand for LookupDevice(device).NewBackend).
func LookupBackend(device string) (BackendFactory, bool) {
	d, ok := LookupDevice(device)
	if !ok || d.NewBackend == nil {
		return nil, false
	}
	return d.NewBackend, true
}

// cpuGenerator is the "cpu" device's Generator: model.Generator, which holds nothing to free.
type cpuGenerator struct{ *model.Generator }

func newCPUGenerator(w *model.Weights, lora *model.LoRAParams) (Generator, error) {
	g, err := model.NewGenerator(w, lora)
	if err != nil {
		return nil, err // model's errors start with "generator:"
	}
	return cpuGenerator{g}, nil
}

// Describe is empty: generating on the CPU needs no description line.
func (cpuGenerator) Describe() string { return "" }

// Close does nothing: the CPU generator's memory is the garbage collector's.
func (cpuGenerator) Close() error { return nil }
