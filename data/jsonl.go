package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

// ReadExamples reads a split file, one Example per line. Blank lines are not allowed;
// a malformed line is an error naming the file and the 1-based line number.
func ReadExamples(path string) ([]Example, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read examples: %w", err)
	}
	defer f.Close()
	var out []Example
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if line == 1 && bytes.HasPrefix(b, utf8BOM) {
			return nil, fmt.Errorf("%s:1: the file starts with a UTF-8 byte-order mark (BOM): save it as UTF-8 without BOM (e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' %s)", path, path)
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("%s:%d: empty line (one JSON object per line expected)", path, line)
		}
		ex, err := ParseExample(b)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, ex)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", path, line+1, err)
	}
	return out, nil
}

// utf8BOM is the byte-order mark some editors put at the start of a UTF-8 file.
var utf8BOM = []byte("\xef\xbb\xbf")

// ParseExample decodes one JSONL line (exactly one JSON object, nothing after it) and checks the fields
// every example must have.
func ParseExample(b []byte) (Example, error) {
	var ex Example
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ex); err != nil {
		return ex, fmt.Errorf("malformed example: %w", err)
	}
	if end := dec.InputOffset(); len(bytes.TrimSpace(b[end:])) > 0 {
		return ex, fmt.Errorf("malformed example: unexpected %q after the JSON object at byte %d (one object per line)",
			truncateBytes(bytes.TrimSpace(b[end:]), 20), end+1)
	}
	switch {
	case ex.Schema.Collection == "":
		return ex, fmt.Errorf("malformed example: schema.collection is missing")
	case len(ex.Schema.Fields) == 0:
		return ex, fmt.Errorf("malformed example: schema.fields is empty")
	case ex.Intent == "":
		return ex, fmt.Errorf("malformed example: intent is missing")
	case len(ex.Output) == 0 || ex.Output[0] != '{':
		return ex, fmt.Errorf("malformed example: output must be a JSON object")
	}
	for i, f := range ex.Schema.Fields {
		if f.Name == "" {
			return ex, fmt.Errorf("malformed example: schema.fields[%d].name is missing", i)
		}
	}
	return ex, nil
}

// truncateBytes shortens b to n bytes for a message, marking the cut.
func truncateBytes(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}
