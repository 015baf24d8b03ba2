package pipeline

import (
	"bytes"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/t2m/t2m/train"
)

// reservingBackend is the CPU backend made to look like the GPU machine's memory plan (train.ShapeReserver):
// it records the shapes it is asked to reserve.
type reservingBackend struct {
	train.Backend
	shapes *[]string
}

func (b reservingBackend) Reserve(batch, seq int) error {
	*b.shapes = append(*b.shapes, fmt.Sprintf("%dx%d", batch, seq))
	return nil
}

// A backend that reserves one shape trains on packed micro-batches: it reserves one row of batch-size × the
// longest sequence (rounded up to 8), training_config.json records that as pack_tokens, and the losses are
// those of the padded rows T2M_PACK=0 gives (dropout off: its masks follow the layout).
func TestTrainPacksOnShapeReserver(t *testing.T) {
	dataDir, runs := writeSplits(t), filepath.Join(t.TempDir(), "runs")
	var shapes []string
	wrapTrainBackends(t, func(b train.Backend) train.Backend { return reservingBackend{b, &shapes} })
	run := func(name, pack string) *TrainResult {
		t.Setenv(train.PackEnv, pack)
		var log bytes.Buffer
		o := signalOptions(t, dataDir, runs, &log)
		o.RunName, o.BatchSize, o.GradAccum, o.Dropout = name, 2, 2, 0
		res, err := Train(o)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	rows, packed := run("rows", "0"), run("packed", "1")
	if len(shapes) != 2 {
		t.Fatalf("reserved %v, want one shape per run", shapes)
	}
	var b, s int
	if _, err := fmt.Sscanf(shapes[0], "%dx%d", &b, &s); err != nil || b != 2 || s%8 != 0 {
		t.Fatalf("T2M_PACK=0 reserved %s, want 2 rows of a multiple of 8", shapes[0])
	}
	if want := fmt.Sprintf("1x%d", 2*s); shapes[1] != want {
		t.Errorf("packing reserved %s, want %s", shapes[1], want)
	}
	if rows.Record.PackTokens != 0 || packed.Record.PackTokens != 2*s {
		t.Errorf("pack_tokens %d in rows, %d packed; want 0 and %d", rows.Record.PackTokens, packed.Record.PackTokens, 2*s)
	}
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-4*math.Abs(a) }
	if !close(rows.Record.FinalTrainLoss, packed.Record.FinalTrainLoss) || len(rows.Record.EvalLosses) != 1 ||
		len(packed.Record.EvalLosses) != 1 || !close(rows.Record.EvalLosses[0], packed.Record.EvalLosses[0]) {
		t.Errorf("final loss %v and eval losses %v packed, %v and %v in rows", packed.Record.FinalTrainLoss,
			packed.Record.EvalLosses, rows.Record.FinalTrainLoss, rows.Record.EvalLosses)
	}
}
