package pipeline

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/t2m/t2m/lora"
	"github.com/t2m/t2m/train"
)

// recordingBackend is the CPU backend made to look like the GPU machine: it records the calls of
// train.Recomputer and train.ShapeReserver in order.
type recordingBackend struct {
	train.Backend
	calls *[]string
}

func (b recordingBackend) SetRecompute(on bool) error {
	*b.calls = append(*b.calls, map[bool]string{true: "recompute on", false: "recompute off"}[on])
	return nil
}

func (b recordingBackend) Reserve(batch, seq int) error {
	*b.calls = append(*b.calls, "reserve")
	return nil
}

// TestTrainGradientCheckpointing: with GradientCheckpointing, a backend that can recompute
// (train.Recomputer) is told so before its memory is reserved, and training_config.json records it; one
// that cannot (the CPU's) gets a note in the log instead, and its adapter is unchanged by the option.
func TestTrainGradientCheckpointing(t *testing.T) {
	dataDir, runs := writeSplits(t), filepath.Join(t.TempDir(), "runs")
	var log bytes.Buffer
	plain := signalOptions(t, dataDir, runs, &log)
	plain.RunName = "plain"
	if _, err := Train(plain); err != nil {
		t.Fatal(err)
	}
	cpu := signalOptions(t, dataDir, runs, &log)
	cpu.RunName, cpu.GradientCheckpointing = "cpu", true
	res, err := Train(cpu)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "note: --gradient-checkpointing has no effect on the cpu backend") {
		t.Errorf("no note that the CPU backend ignores the option in the log:\n%s", log.String())
	}
	if !res.Record.GradientCheckpointing {
		t.Error("training_config.json does not record --gradient-checkpointing")
	}
	if !bytes.Equal(readAdapter(t, runs, "plain"), readAdapter(t, runs, "cpu")) {
		t.Error("--gradient-checkpointing changed the CPU's adapter")
	}

	var calls []string
	wrapTrainBackends(t, func(b train.Backend) train.Backend { return recordingBackend{b, &calls} })
	log.Reset()
	rec := signalOptions(t, dataDir, runs, &log)
	rec.RunName, rec.GradientCheckpointing = "recomputer", true
	if _, err := Train(rec); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(calls, []string{"recompute on", "reserve"}) {
		t.Errorf("backend calls %v, want recomputation turned on before the reservation", calls)
	}
	if strings.Contains(log.String(), "no effect") {
		t.Errorf("a backend that recomputes got the note that it does not:\n%s", log.String())
	}
}

// readAdapter reads a run's adapter weights file.
func readAdapter(t *testing.T, runs, run string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(runs, run, "adapter", lora.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
