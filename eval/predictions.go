package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// ReadPredictions reads a predictions file: one JSON object per line with a string
// field "prediction" (the raw model output); other fields are ignored, so t2m's
// own <split>_predictions.jsonl and the original's can be scored again. A line
// that is blank, not an object, or lacks a string "prediction" is an error naming
// the file and the 1-based line.
func ReadPredictions(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read predictions: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	var out []string
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if len(b) == 0 && errors.Is(err, io.EOF) {
			return out, nil
		}
		if line == 1 && bytes.HasPrefix(b, []byte("\xef\xbb\xbf")) {
			return nil, fmt.Errorf("%s:1: the file starts with a UTF-8 byte-order mark (BOM): save it as UTF-8 without BOM", path)
		}
		p, perr := parsePredictionLine(bytes.TrimSpace(b))
		if perr != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, perr)
		}
		out = append(out, p)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
	}
}

func parsePredictionLine(b []byte) (string, error) {
	if len(b) == 0 {
		return "", errors.New(`empty line (one JSON object per line expected, e.g. {"prediction": "..."})`)
	}
	var rec struct {
		Prediction *json.RawMessage `json:"prediction"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return "", fmt.Errorf(`malformed prediction line (want a JSON object with a string field "prediction"): %w`, err)
	}
	if rec.Prediction == nil {
		return "", errors.New(`missing field "prediction" (the raw model output, a string)`)
	}
	var s string
	if err := json.Unmarshal(*rec.Prediction, &s); err != nil {
		return "", fmt.Errorf(`field "prediction" must be a string (the raw model output), got %s`, truncate(string(*rec.Prediction), 40))
	}
	return s, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
