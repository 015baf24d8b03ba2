package eval

import (
	"errors"
	"fmt"
	"strings"
)

// SyntaxResult is the verdict of layer 1 on an extracted prediction.
type SyntaxResult struct {
	Passed bool `json:"passed"`
	// Query is the parsed top-level object when the layer passed, else nil.
	Query *Object `json:"-"`
	// Errors holds the reason for a failure (the first rule broken), in the
	// original's wording.
	Errors []string `json:"errors,omitempty"`
}

// CheckSyntax is layer 1, with the original's rules in its order: valid JSON (as
// Python's json.loads), a top-level object, a "type" key whose value is "aggregate"
// or "find"; an aggregate needs a "pipeline" list whose items are objects with
// exactly one distinct key starting with '$' (other keys are not checked); a find
// needs a "filter" object.
func CheckSyntax(prediction string) SyntaxResult {
	v, err := ParsePython(prediction)
	return checkParsed(v, err)
}

// checkParsed is CheckSyntax on the result of ParsePython.
func checkParsed(v any, err error) SyntaxResult {
	if err != nil {
		var se *SyntaxError
		msg := err.Error()
		if errors.As(err, &se) {
			msg = se.Msg + fmt.Sprintf(" at byte %d", se.Offset)
		}
		return syntaxFail("Invalid JSON: " + msg)
	}
	q, ok := v.(*Object)
	if !ok {
		return syntaxFail("Top-level value must be an object")
	}
	typ, ok := q.Get("type")
	if !ok {
		return syntaxFail("Missing 'type' field")
	}
	switch typ {
	case "aggregate":
		pipe, ok := q.Get("pipeline")
		if !ok {
			return syntaxFail("Aggregate query missing 'pipeline'")
		}
		stages, ok := pipe.([]any)
		if !ok {
			return syntaxFail("'pipeline' must be a list")
		}
		for i, s := range stages {
			stage, ok := s.(*Object)
			if !ok {
				return syntaxFail(fmt.Sprintf("Pipeline stage %d is not an object", i))
			}
			n := 0
			for _, k := range stage.Keys {
				if strings.HasPrefix(k, "$") {
					n++
				}
			}
			if n != 1 {
				return syntaxFail(fmt.Sprintf("Pipeline stage %d must have exactly one $-prefixed key, got %d", i, n))
			}
		}
	case "find":
		filter, ok := q.Get("filter")
		if !ok {
			return syntaxFail("Find query missing 'filter'")
		}
		if _, ok := filter.(*Object); !ok {
			return syntaxFail("'filter' must be an object")
		}
	default:
		return syntaxFail(fmt.Sprintf("Invalid type '%s'; expected 'aggregate' or 'find'", pyStr(typ)))
	}
	return SyntaxResult{Passed: true, Query: q}
}

func syntaxFail(reason string) SyntaxResult {
	return SyntaxResult{Errors: []string{reason}}
}
