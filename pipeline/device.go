package pipeline

import (
	"fmt"

	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/train"
)

// CPUParamLimit is the model size (model.Config.NumParams) above which ResolveDevice does not pick the
// CPU by itself: such a run needs Device "cpu" spelled out.
const CPUParamLimit = 1e9

// lookupDevice is train.LookupDevice, the one device registry; tests put a fake registry here.
var lookupDevice = train.LookupDevice

// hasGPUPath says whether this binary's "cuda" device can do what cmd needs: train needs its training
// backend, baseline and eval its generator (the CUDA build registers both).
func hasGPUPath(cmd string) (train.Device, bool) {
	d, ok := lookupDevice("cuda")
	if !ok {
		return d, false
	}
	if cmd == "train" {
		return d, d.NewBackend != nil
	}
	return d, d.NewGenerator != nil
}

// ResolveDevice applies a --device value for a run of cmd ("train", "baseline", "eval") of the model
// name with config cfg, and returns the device to use. cuda needs the command's half of the registered
// "cuda" device and a usable GPU; auto ("" too) picks cuda when both are there and otherwise the CPU,
// except for a model above CPUParamLimit (then cpu must be explicit).
func ResolveDevice(flag, cmd, name string, cfg model.Config) (string, error) {
	dev, hasCUDA := hasGPUPath(cmd)
	if flag == "" {
		flag = "auto"
	}
	gpuErr := train.ErrNoCUDA
	if hasCUDA && (flag == "cuda" || flag == "auto") {
		gpuErr = dev.Usable()
	}
	switch flag {
	case "cpu":
		return "cpu", nil
	case "cuda":
		if !hasCUDA {
			return "", fmt.Errorf("--device cuda: this t2m binary has no GPU backend for %s (the CPU build: build bin/t2m-cuda with make build-cuda): use --device cpu", cmd)
		}
		if gpuErr != nil {
			return "", fmt.Errorf("--device cuda: %w", gpuErr)
		}
		return "cuda", nil
	case "auto":
		if hasCUDA && gpuErr == nil {
			return "cuda", nil
		}
		if n := float64(cfg.NumParams()); n > CPUParamLimit {
			return "", fmt.Errorf("--device auto: no usable GPU backend (%v), and %s (%.1fB parameters) on the CPU would take days: run t2m %s with the CUDA build on a GPU machine, or pass --device cpu to run it on the CPU anyway",
				gpuErr, name, n/1e9, cmd)
		}
		return "cpu", nil
	}
	return "", fmt.Errorf("--device %q: want auto, cpu or cuda", flag)
}
