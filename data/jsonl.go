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

// ParseExample decodes one JSONL line and checks the fields every example must have.
func ParseExample(b []byte) (Example, error) {
	var ex Example
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ex); err != nil {
		return ex, fmt.Errorf("malformed example: %w", err)
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
